//! The embedded manifests (`manifests/`) rendered with checked [`Values`] into a [`Manifest`].
//!
//! Templates are minijinja with strict undefined variables: a template naming a value that does
//! not exist fails to render instead of printing nothing. Each rendered document is parsed
//! back, labelled as ambient's, given the install namespace when namespaced, and sorted into
//! apply order. Rendering is a pure function of the values, and the output's maps are sorted,
//! so identical input gives byte-identical YAML.

use include_dir::{Dir, include_dir};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value, json};

use super::values::{Request, Resources, Values, ValuesError, resolve};
use super::{INSTALLED_KINDS, InstalledKind, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest};

static MANIFESTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/manifests");

/// The Secret the control plane keeps its generated CA root in.
pub const CA_SECRET: &str = "ambient-ca";
/// The ConfigMap the control plane publishes the root certificate in (Istio's name and key, so
/// Istio's own ztunnel could mount it too).
pub const ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";
/// The image every component runs.
pub const IMAGE_NAME: &str = "ambient";
/// The labels naming what an object belongs to: ambient, and which part of it.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Values(#[from] ValuesError),
    #[error("manifests/{template}: {message}")]
    Template { template: String, message: String },
    #[error("manifests/{template}: document {index}: {message}")]
    Object { template: String, index: usize, message: String },
}

/// Resolves the values of `request` and renders them.
pub fn build(request: &Request) -> Result<Manifest, RenderError> {
    render(&resolve(request)?)
}

/// The component folders, in the order their templates render.
const COMPONENTS: &[&str] = &["base", "controlplane", "ztunnel", "cni"];

/// Renders every enabled component's templates and the enabled CRD sets.
pub fn render(values: &Values) -> Result<Manifest, RenderError> {
    let env = environment();
    let context = context(values);
    let mut objects = Vec::new();
    for component in COMPONENTS {
        let enabled = match *component {
            "controlplane" => values.controlplane.enabled,
            "ztunnel" => values.ztunnel.enabled,
            "cni" => values.cni.enabled,
            _ => true,
        };
        if !enabled {
            continue;
        }
        for file in sorted_files(component) {
            let template = file.path().to_string_lossy().to_string();
            let source = file.contents_utf8().ok_or_else(|| RenderError::Template {
                template: template.clone(),
                message: "is not UTF-8".to_string(),
            })?;
            let text = env
                .render_str(source, &context)
                .map_err(|e| RenderError::Template { template: template.clone(), message: describe(&e) })?;
            objects.extend(parse_documents(&template, &text, component)?);
        }
    }
    for (enabled, folder) in [(values.crds.istio, "crds/istio"), (values.crds.gateway_api, "crds/gateway-api")] {
        if enabled {
            for file in sorted_files(folder) {
                let template = file.path().to_string_lossy().to_string();
                let text = file.contents_utf8().unwrap_or_default();
                objects.extend(parse_documents(&template, text, "crds")?);
            }
        }
    }
    let namespace = values.global.namespace.clone();
    for object in &mut objects {
        let namespaced = InstalledKind::of(object).is_some_and(|kind| kind.namespaced);
        if namespaced && object.pointer("/metadata/namespace").is_none() {
            object["metadata"]["namespace"] = json!(namespace);
        }
    }
    // Stable: objects of one kind keep their template order.
    objects.sort_by_key(|o| INSTALLED_KINDS.iter().position(|k| Some(k) == InstalledKind::of(o)));
    Ok(Manifest { namespace, objects })
}

fn sorted_files(folder: &str) -> Vec<&'static include_dir::File<'static>> {
    let mut files: Vec<_> = MANIFESTS
        .get_dir(folder)
        .map(|d| d.files().filter(|f| f.path().extension().is_some_and(|e| e == "yaml")).collect())
        .unwrap_or_default();
    files.sort_by_key(|f| f.path());
    files
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("resources", resources_filter);
    env
}

/// A container's `resources` as inline YAML (JSON), unset quantities left out.
fn resources_filter(value: minijinja::Value) -> Result<String, minijinja::Error> {
    let resources: Resources = serde_json::to_value(&value)
        .and_then(serde_json::from_value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = Map::new();
    for (name, quantities) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        let mut set = Map::new();
        for (key, quantity) in [("cpu", &quantities.cpu), ("memory", &quantities.memory)] {
            if let Some(q) = quantity {
                set.insert(key.to_string(), json!(q));
            }
        }
        if !set.is_empty() {
            out.insert(name.to_string(), Value::Object(set));
        }
    }
    Ok(Value::Object(out).to_string())
}

fn context(values: &Values) -> Value {
    let host_pid = values.cni.netns_prefix.is_empty();
    let mut capabilities = vec!["NET_ADMIN", "SYS_ADMIN"];
    if host_pid {
        capabilities.push("SYS_PTRACE");
    }
    json!({
        "values": values,
        "namespace": values.global.namespace,
        "image": format!("{}/{IMAGE_NAME}:{}", values.global.hub, values.global.tag),
        "ca_secret": CA_SECRET,
        "root_cert_configmap": ROOT_CERT_CONFIGMAP,
        "host_pid": host_pid,
        "cni_capabilities": Value::from(capabilities).to_string(),
    })
}

fn describe(err: &minijinja::Error) -> String {
    let line = err.line().map(|l| format!("line {l}: ")).unwrap_or_default();
    format!("{line}{}", err.detail().unwrap_or(&err.kind().to_string()))
}

/// The objects of one rendered template: empty documents (a disabled part) are skipped; each
/// object gets ambient's labels.
fn parse_documents(template: &str, text: &str, component: &str) -> Result<Vec<Value>, RenderError> {
    let documents: Vec<Option<Value>> = serde_saphyr::from_multiple(text).map_err(|e| RenderError::Template {
        template: template.to_string(),
        message: format!("rendered YAML does not parse: {}", e.to_string().lines().next().unwrap_or_default()),
    })?;
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let object = match document {
            None => continue,
            Some(Value::Object(map)) => map,
            Some(_) => {
                let message = "is not a mapping".to_string();
                return Err(RenderError::Object { template: template.to_string(), index, message });
            }
        };
        let mut object = Value::Object(object);
        if InstalledKind::of(&object).is_none() {
            let kind = format!("{} {}", object["apiVersion"], object["kind"]);
            let message = format!("{kind} is not a kind install manages (INSTALLED_KINDS)");
            return Err(RenderError::Object { template: template.to_string(), index, message });
        }
        let metadata = object
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut);
        if let Some(metadata) = metadata {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            labels[MANAGED_BY_LABEL] = json!(MANAGED_BY_VALUE);
            labels[PART_OF_LABEL] = json!("ambient");
            labels[COMPONENT_LABEL] = json!(component);
        }
        objects.push(object);
    }
    Ok(objects)
}

/// The manifest as one YAML stream, `---` between objects.
pub fn to_yaml(manifest: &Manifest) -> String {
    manifest
        .objects
        .iter()
        .map(|object| serde_saphyr::to_string(object).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}
