//! Install values: a profile, then `-f` files, then `--set` overrides, merged into one checked
//! [`Values`].
//!
//! `profiles/default.yaml` is the schema: every key a profile, a values file or `--set` may name
//! is in it, and its leaves say each key's type. Merging happens on plain trees (so an unknown
//! key is reported by its path and where it came from), then the tree becomes the typed
//! [`Values`] and every value is checked. Every problem is reported, not just the first, on one
//! line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

static PROFILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/profiles");

/// The profile every other profile is laid over; its file lists every key.
pub const BASE_PROFILE: &str = "default";

/// What to render: a profile, values files over it, then `--set KEY=VALUE` overrides.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub profile: String,
    pub files: Vec<PathBuf>,
    pub sets: Vec<String>,
}

impl Request {
    pub fn profile(name: &str) -> Request {
        Request { profile: name.to_string(), ..Request::default() }
    }
}

/// One bad value: which key, where it came from, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub origin: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.origin, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("unknown profile {name:?} (profiles: {known})")]
    UnknownProfile { name: String, known: String },
    #[error("values file {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid install values: {}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

/// The names of the built-in profiles, sorted.
pub fn profile_names() -> Vec<String> {
    let mut names: Vec<String> =
        PROFILES.files().filter_map(|f| f.path().to_str()?.strip_suffix(".yaml").map(str::to_string)).collect();
    names.sort();
    names
}

/// The first comment block of a profile's file: what it is for.
pub fn profile_description(name: &str) -> Option<String> {
    let text = profile_text(name)?;
    let lines: Vec<&str> =
        text.lines().take_while(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim()).collect();
    let text = lines.join(" ");
    // The first sentence.
    Some(text.split_once(". ").map_or(text.clone(), |(first, _)| format!("{first}.")))
}

fn profile_text(name: &str) -> Option<&'static str> {
    PROFILES.get_file(format!("{name}.yaml"))?.contents_utf8()
}

fn parse_tree(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_saphyr::from_str::<Option<Value>>(text) {
        Ok(Some(Value::Object(map))) => Ok(map),
        Ok(None) => Ok(Map::new()),
        Ok(Some(_)) => Err(format!("{what} is not a mapping of keys to values")),
        Err(e) => Err(e.to_string().lines().next().unwrap_or("invalid YAML").to_string()),
    }
}

/// Where each key's value came from, for error messages.
type Origins = BTreeMap<String, String>;

/// Values being merged: the tree, the base tree (the schema), and each key's origin.
struct Merge {
    schema: Map<String, Value>,
    tree: Map<String, Value>,
    origins: Origins,
    problems: Vec<Problem>,
}

impl Merge {
    fn new() -> Merge {
        let text = profile_text(BASE_PROFILE).unwrap_or_default();
        // The base profile is embedded and tested; a broken one cannot be used at all.
        let schema = parse_tree(text, "profiles/default.yaml").unwrap_or_default();
        let mut origins = Origins::new();
        record_origins(&schema, "", &format!("profile {BASE_PROFILE}"), &mut origins);
        Merge { tree: schema.clone(), schema, origins, problems: Vec::new() }
    }

    /// Lays `overlay` over the tree; keys the schema lacks become problems.
    fn overlay(&mut self, overlay: &Map<String, Value>, origin: &str) {
        let mut problems = Vec::new();
        merge_into(&mut self.tree, &self.schema, overlay, "", origin, &mut self.origins, &mut problems);
        self.problems.extend(problems);
    }

    /// One `--set KEY=VALUE`: the key must exist, the value must parse as the key's type.
    fn set(&mut self, assignment: &str) {
        let origin = format!("--set {assignment}");
        let Some((raw_key, text)) = assignment.split_once('=') else {
            self.problem(assignment, "--set", "expected KEY=VALUE".to_string());
            return;
        };
        let key = canonical_key(raw_key.trim());
        let path: Vec<&str> = key.split('.').collect();
        let mut schema = &self.schema;
        for (i, segment) in path.iter().enumerate() {
            let so_far = path[..=i].join(".");
            match schema.get(*segment) {
                Some(Value::Object(inner)) if i + 1 < path.len() => schema = inner,
                Some(Value::Object(_)) => {
                    let keys = schema.get(*segment).and_then(Value::as_object).map(known_keys).unwrap_or_default();
                    self.problem(&key, &origin, format!("{so_far} is a group of keys, set one of: {keys}"));
                    return;
                }
                Some(leaf) if i + 1 == path.len() => {
                    match parse_leaf(leaf, text) {
                        Ok(value) => {
                            set_path(&mut self.tree, &path, value);
                            self.origins.insert(key.clone(), origin);
                        }
                        Err(message) => self.problem(&key, &origin, message),
                    }
                    return;
                }
                Some(_) => {
                    self.problem(&key, &origin, format!("{so_far} is a single value and has no key {:?}", path[i + 1]));
                    return;
                }
                None => {
                    let parent = if i == 0 { "top level".to_string() } else { path[..i].join(".") };
                    self.problem(&key, &origin, format!("unknown key (known at {parent}: {})", known_keys(schema)));
                    return;
                }
            }
        }
    }

    fn problem(&mut self, key: &str, origin: &str, message: String) {
        self.problems.push(Problem { key: key.to_string(), origin: origin.to_string(), message });
    }
}

fn known_keys(map: &Map<String, Value>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn record_origins(tree: &Map<String, Value>, prefix: &str, origin: &str, origins: &mut Origins) {
    for (key, value) in tree {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Object(inner) => record_origins(inner, &path, origin, origins),
            _ => {
                origins.insert(path, origin.to_string());
            }
        }
    }
}

fn merge_into(
    tree: &mut Map<String, Value>,
    schema: &Map<String, Value>,
    overlay: &Map<String, Value>,
    prefix: &str,
    origin: &str,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    for (key, value) in overlay {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (schema.get(key), value) {
            (None, _) => {
                let parent = if prefix.is_empty() { "top level" } else { prefix };
                let message = format!("unknown key (known at {parent}: {})", known_keys(schema));
                problems.push(Problem { key: path, origin: origin.to_string(), message });
            }
            (Some(Value::Object(inner_schema)), Value::Object(inner)) => {
                let entry = tree.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(inner_tree) = entry {
                    merge_into(inner_tree, inner_schema, inner, &path, origin, origins, problems);
                }
            }
            (Some(Value::Object(inner_schema)), _) => {
                let message = format!("is a group of keys ({}), not a single value", known_keys(inner_schema));
                problems.push(Problem { key: path, origin: origin.to_string(), message });
            }
            (Some(_), Value::Object(_)) => {
                problems.push(Problem {
                    key: path,
                    origin: origin.to_string(),
                    message: "is a single value, not a group of keys".to_string(),
                });
            }
            (Some(_), _) => {
                tree.insert(key.clone(), value.clone());
                origins.insert(path, origin.to_string());
            }
        }
    }
}

fn set_path(tree: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = tree;
    for segment in parents {
        let entry = node.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = entry else { return };
        node = inner;
    }
    node.insert(last.to_string(), value);
}

/// `--set` text as the type of the key's default: booleans and integers parse, strings stay
/// as typed, and an empty value unsets a key whose default is unset (null).
fn parse_leaf(default: &Value, text: &str) -> Result<Value, String> {
    match default {
        Value::Bool(_) => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not a boolean (true or false)")),
        },
        Value::Number(_) => text.parse::<u64>().map(Value::from).map_err(|_| format!("{text:?} is not a whole number")),
        Value::Null if text.is_empty() || text == "null" => Ok(Value::Null),
        _ => Ok(Value::String(text.to_string())),
    }
}

/// Names Istio users type, mapped to ours: `values.` and `spec.values.` prefixes (istioctl's),
/// the top-level shorthands, and the CNI chart's folder names.
pub fn canonical_key(key: &str) -> String {
    let key = key.strip_prefix("spec.").unwrap_or(key);
    let key = key.strip_prefix("values.").unwrap_or(key);
    match key {
        "hub" => "global.hub".to_string(),
        "tag" => "global.tag".to_string(),
        "trustDomain" | "meshConfig.trustDomain" => "global.trustDomain".to_string(),
        "logLevel" | "global.logging.level" => "global.logLevel".to_string(),
        "global.istioNamespace" | "namespace" => "global.namespace".to_string(),
        "global.multiCluster.clusterName" => "global.clusterId".to_string(),
        "cni.cniBinDir" => "cni.binDir".to_string(),
        "cni.cniConfDir" => "cni.confDir".to_string(),
        "cni.cniNetnsDir" => "cni.netnsDir".to_string(),
        _ => key.to_string(),
    }
}

/// Checked install values (the keys of `profiles/default.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Values {
    pub global: Global,
    pub crds: Crds,
    pub controlplane: Controlplane,
    pub ztunnel: Ztunnel,
    pub cni: Cni,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Global {
    pub hub: String,
    pub tag: String,
    pub image_pull_policy: String,
    pub log_level: String,
    pub log_format: String,
    pub namespace: String,
    pub trust_domain: String,
    pub cluster_id: String,
    pub platform: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Crds {
    pub istio: bool,
    #[serde(rename = "gatewayAPI")]
    pub gateway_api: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Controlplane {
    pub enabled: bool,
    pub replicas: u32,
    pub pod_disruption_budget: bool,
    #[serde(rename = "certTTL")]
    pub cert_ttl: String,
    #[serde(rename = "maxCertTTL")]
    pub max_cert_ttl: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ztunnel {
    pub enabled: bool,
    pub access_log: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cni {
    pub enabled: bool,
    pub bin_dir: String,
    pub conf_dir: String,
    pub netns_dir: String,
    pub netns_prefix: String,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: Quantities,
    pub limits: Quantities,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    #[serde(deserialize_with = "empty_is_unset")]
    pub cpu: Option<String>,
    #[serde(deserialize_with = "empty_is_unset")]
    pub memory: Option<String>,
}

/// `--set ...limits.memory=` unsets a quantity whose default is set.
fn empty_is_unset<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()))
}

/// The GKE host folder for CNI plugin binaries (`/opt` is read-only on Container-Optimized OS).
pub const GKE_CNI_BIN_DIR: &str = "/home/kubernetes/bin";

/// Merges the profile, the files and the `--set` overrides, and checks the result.
pub fn resolve(request: &Request) -> Result<Values, ValuesError> {
    let mut merge = Merge::new();
    // istioctl's `--set profile=demo` picks the profile, like --profile (and wins over it).
    let set_profile = request.sets.iter().rev().find_map(|s| {
        let (key, value) = s.split_once('=')?;
        matches!(key.trim(), "profile" | "spec.profile").then(|| value.trim().to_string())
    });
    let sets = request
        .sets
        .iter()
        .filter(|s| !s.split_once('=').is_some_and(|(k, _)| matches!(k.trim(), "profile" | "spec.profile")));
    let profile_name = match &set_profile {
        Some(name) => name.as_str(),
        None if request.profile.is_empty() => BASE_PROFILE,
        None => request.profile.as_str(),
    };
    let Some(profile) = profile_text(profile_name) else {
        return Err(ValuesError::UnknownProfile { name: profile_name.to_string(), known: profile_names().join(", ") });
    };
    let overlay = parse_tree(profile, &format!("profiles/{profile_name}.yaml"))
        .map_err(|message| ValuesError::File { path: format!("profiles/{profile_name}.yaml"), message })?;
    merge.overlay(&overlay, &format!("profile {profile_name}"));
    for path in &request.files {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ValuesError::File { path: shown.clone(), message: format!("cannot read: {e}") })?;
        let overlay =
            parse_tree(&text, "the file").map_err(|message| ValuesError::File { path: shown.clone(), message })?;
        merge.overlay(&overlay, &shown);
    }
    for assignment in sets {
        merge.set(assignment);
    }
    apply_platform_defaults(&mut merge);
    // Keys that could not be merged were left out; what did merge is still checked, so that
    // every problem is reported at once.
    let mut problems = merge.problems;
    let tree = Value::Object(merge.tree);
    match serde_path_to_error::deserialize::<_, Values>(&tree) {
        Ok(values) => {
            problems.extend(super::check::check(&values, &merge.origins));
            if problems.is_empty() {
                return Ok(values);
            }
        }
        Err(e) => {
            let key = e.path().to_string();
            let origin = merge.origins.get(&key).cloned().unwrap_or_else(|| "values".to_string());
            problems.push(Problem { key, origin, message: e.inner().to_string() });
        }
    }
    Err(ValuesError::Invalid(problems))
}

/// Platform defaults for keys nobody set: GKE's CNI binary folder.
fn apply_platform_defaults(merge: &mut Merge) {
    let platform = merge.tree.get("global").and_then(|g| g.get("platform")).and_then(Value::as_str).unwrap_or("");
    let bin_dir_from_profile = merge.origins.get("cni.binDir").is_some_and(|o| o.starts_with("profile "));
    if platform == "gke" && bin_dir_from_profile {
        set_path(&mut merge.tree, &["cni", "binDir"], Value::String(GKE_CNI_BIN_DIR.to_string()));
        merge.origins.insert("cni.binDir".to_string(), "global.platform=gke".to_string());
    }
}

/// A profile's full values (the base with the profile over it), as YAML.
pub fn dump(name: &str) -> Result<String, ValuesError> {
    let values = resolve(&Request::profile(name))?;
    serde_saphyr::to_string(&values)
        .map_err(|e| ValuesError::File { path: format!("profiles/{name}.yaml"), message: e.to_string() })
}
