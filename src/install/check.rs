//! Every install value checked: what Kubernetes, the image registry and the components would
//! refuse later is refused here, naming the key and where its value came from.

use std::collections::BTreeMap;

use super::values::{Problem, Quantities, Resources, Values};
use crate::mesh::MeshConfig;

/// Problems with `values`, each naming its key and origin (`origins`: key -> where from).
pub fn check(values: &Values, origins: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut problems = Problems { origins, list: Vec::new() };
    let g = &values.global;
    problems.expect(
        "global.hub",
        &g.hub,
        is_image_repository(&g.hub),
        "is not an image registry path (like ghcr.io/org)",
    );
    problems.expect(
        "global.tag",
        &g.tag,
        is_image_tag(&g.tag),
        "is not an image tag (letters, digits, '_', '.', '-'; at most 128)",
    );
    problems.one_of("global.imagePullPolicy", &g.image_pull_policy, &["Always", "IfNotPresent", "Never"]);
    problems.expect(
        "global.logLevel",
        &g.log_level,
        is_log_filter(&g.log_level),
        "is not a log level or filter (like info or info,ambient=debug)",
    );
    problems.one_of("global.logFormat", &g.log_format, &["text", "json"]);
    problems.expect(
        "global.namespace",
        &g.namespace,
        is_dns_label(&g.namespace),
        "is not a namespace name (lowercase DNS label)",
    );
    if let Err(e) = MeshConfig::new(&g.trust_domain, "istio-system") {
        problems.add("global.trustDomain", format!("{:?}: {e}", g.trust_domain));
    }
    problems.expect(
        "global.clusterId",
        &g.cluster_id,
        is_cluster_id(&g.cluster_id),
        "is not a cluster id (non-empty, no '/' or spaces)",
    );
    problems.one_of("global.platform", &g.platform, &["", "kind", "gke", "eks"]);

    let cp = &values.controlplane;
    if cp.replicas == 0 {
        problems.add("controlplane.replicas", "must be at least 1".to_string());
    } else if cp.replicas == 1 && cp.pod_disruption_budget {
        let message = "a disruption budget over one replica blocks every node drain: set controlplane.replicas=2 or controlplane.podDisruptionBudget=false";
        problems.add("controlplane.podDisruptionBudget", message.to_string());
    }
    for (key, ttl) in [("controlplane.certTTL", &cp.cert_ttl), ("controlplane.maxCertTTL", &cp.max_cert_ttl)] {
        if let Err(e) = crate::controlplane::ca::parse_duration(ttl) {
            problems.add(key, format!("{ttl:?}: {e}"));
        }
    }
    problems.resources("controlplane.resources", &cp.resources);
    problems.one_of("ztunnel.accessLog", &values.ztunnel.access_log, &["text", "json", "off"]);
    problems.resources("ztunnel.resources", &values.ztunnel.resources);
    let cni = &values.cni;
    for (key, path) in [("cni.binDir", &cni.bin_dir), ("cni.confDir", &cni.conf_dir), ("cni.netnsDir", &cni.netns_dir)]
    {
        problems.expect(key, path, is_host_path(path), "is not an absolute host path");
    }
    problems.expect(
        "cni.netnsPrefix",
        &cni.netns_prefix,
        !cni.netns_prefix.contains(['/', ' ']),
        "must not contain '/' or spaces",
    );
    problems.resources("cni.resources", &cni.resources);
    if (values.ztunnel.enabled || cni.enabled) && !(values.ztunnel.enabled && cni.enabled) {
        problems.add(
            if values.ztunnel.enabled { "cni.enabled" } else { "ztunnel.enabled" },
            "ztunnel and the CNI agent work together: enable both or neither".to_string(),
        );
    }
    problems.list
}

struct Problems<'a> {
    origins: &'a BTreeMap<String, String>,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn add(&mut self, key: &str, message: String) {
        let origin = self.origins.get(key).cloned().unwrap_or_else(|| "values".to_string());
        self.list.push(Problem { key: key.to_string(), origin, message });
    }

    fn expect(&mut self, key: &str, value: &str, ok: bool, what: &str) {
        if !ok {
            self.add(key, format!("{value:?} {what}"));
        }
    }

    fn one_of(&mut self, key: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let shown: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            self.add(key, format!("{value:?} is not one of {}", shown.join(", ")));
        }
    }

    fn resources(&mut self, key: &str, resources: &Resources) {
        self.quantities(&format!("{key}.requests"), &resources.requests);
        self.quantities(&format!("{key}.limits"), &resources.limits);
    }

    fn quantities(&mut self, key: &str, quantities: &Quantities) {
        for (name, value) in [("cpu", &quantities.cpu), ("memory", &quantities.memory)] {
            if let Some(value) = value {
                self.expect(
                    &format!("{key}.{name}"),
                    value,
                    is_quantity(value),
                    "is not a Kubernetes quantity (like 100m, 0.5, 256Mi, 1Gi)",
                );
            }
        }
    }
}

/// `registry[:port]/path` in lowercase, as image references allow.
fn is_image_repository(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('/')
        && !text.ends_with('/')
        && !text.contains("//")
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
}

fn is_image_tag(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `level` or `target=level`, comma separated (tracing's filter syntax, levels only).
fn is_log_filter(text: &str) -> bool {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    !text.is_empty()
        && text.split(',').all(|directive| {
            let level = directive.rsplit_once('=').map_or(directive, |(target, level)| {
                if target.is_empty() || !target.chars().all(|c| c.is_ascii_alphanumeric() || "_:".contains(c)) {
                    ""
                } else {
                    level
                }
            });
            LEVELS.contains(&level)
        })
}

/// A DNS-1123 label: what namespace names must be.
pub fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_cluster_id(text: &str) -> bool {
    !text.is_empty() && !text.contains(['/', ' ', '\t'])
}

fn is_host_path(text: &str) -> bool {
    text.starts_with('/') && !text.contains(['\n', ' ']) && !text.split('/').any(|s| s == "..")
}

/// A Kubernetes resource quantity: a decimal number with an optional SI or binary suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", ""];
    SUFFIXES.iter().any(|suffix| {
        text.strip_suffix(suffix).is_some_and(|number| {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let fraction = parts.next();
            !number.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
                && (!whole.is_empty() || fraction.is_some())
        })
    })
}
