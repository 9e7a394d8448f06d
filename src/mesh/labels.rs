//! The labels and annotations Istio ambient gives meaning to, and how they combine.

use super::types::{Labels, WaypointRef};

/// Enrols a namespace or pod in the mesh (`ambient`) or opts a pod out (`none`).
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
pub const DATAPLANE_MODE_AMBIENT: &str = "ambient";
/// Value of [`DATAPLANE_MODE_LABEL`] and [`USE_WAYPOINT_LABEL`] that opts an object out.
pub const NONE_VALUE: &str = "none";
/// Names the waypoint (a Gateway) for a pod, service or namespace.
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// Namespace of the waypoint named by [`USE_WAYPOINT_LABEL`]; defaults to the object's own.
pub const USE_WAYPOINT_NAMESPACE_LABEL: &str = "istio.io/use-waypoint-namespace";
/// Set by Istio's sidecar injector: such a pod has its own proxy and is never enrolled.
pub const SIDECAR_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";

/// Whether every label of `selector` is present on `labels` with the same value. An empty
/// selector matches everything; callers that need "empty selects nothing" check that first.
pub fn selector_matches(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What an object's own [`USE_WAYPOINT_LABEL`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaypointLabel {
    /// No (or an empty) label: the namespace decides.
    Inherit,
    /// `none`: no waypoint, whatever the namespace says.
    OptOut,
    Use(WaypointRef),
}

impl WaypointLabel {
    /// Reads the waypoint labels of an object in `own_namespace` (for a Namespace object, its
    /// own name).
    pub fn from_labels(labels: &Labels, own_namespace: &str) -> WaypointLabel {
        match labels.get(USE_WAYPOINT_LABEL).map(String::as_str) {
            None | Some("") => WaypointLabel::Inherit,
            Some(NONE_VALUE) => WaypointLabel::OptOut,
            Some(name) => {
                let namespace = labels
                    .get(USE_WAYPOINT_NAMESPACE_LABEL)
                    .filter(|ns| !ns.is_empty())
                    .map_or(own_namespace, String::as_str);
                WaypointLabel::Use(WaypointRef { namespace: namespace.to_string(), name: name.to_string() })
            }
        }
    }

    /// The waypoint of an object with this label in a namespace labelled `namespace`: the
    /// object's own choice wins, including opting out.
    pub fn resolve(&self, namespace: &WaypointLabel) -> Option<WaypointRef> {
        match (self, namespace) {
            (WaypointLabel::Use(waypoint), _) => Some(waypoint.clone()),
            (WaypointLabel::OptOut, _) => None,
            (WaypointLabel::Inherit, WaypointLabel::Use(waypoint)) => Some(waypoint.clone()),
            (WaypointLabel::Inherit, _) => None,
        }
    }
}

/// Whether `labels` (of a namespace) enrol it in ambient mode.
pub fn labels_enrol(labels: &Labels) -> bool {
    labels.get(DATAPLANE_MODE_LABEL).map(String::as_str) == Some(DATAPLANE_MODE_AMBIENT)
}

/// Whether a pod with `pod_labels` asks to be enrolled, in a namespace that is
/// (`namespace_enrolled`) or is not. The pod's own label wins in both directions; pods that can
/// never be enrolled (host network, sidecar) are excluded by the caller.
pub fn pod_wants_enrolment(pod_labels: &Labels, namespace_enrolled: bool) -> bool {
    match pod_labels.get(DATAPLANE_MODE_LABEL).map(String::as_str) {
        Some(NONE_VALUE) => false,
        Some(DATAPLANE_MODE_AMBIENT) => true,
        _ => namespace_enrolled,
    }
}
