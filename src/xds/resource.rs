//! What the control plane serves over xDS, independent of any client: named, encoded resources
//! of a type, and the batches of changes that move the served state forward.

use bytes::Bytes;

/// One resource as served: its name, the other names a client may subscribe to it by, and its
/// encoded message (the `value` of the `Any` it is sent in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub type_url: &'static str,
    /// Primary name: a workload's uid, `<namespace>/<hostname>` for a service,
    /// `<namespace>/<name>` for an authorization.
    pub name: String,
    /// On-demand names that resolve to this resource, e.g. `<network>/<ip>` for an address.
    pub aliases: Vec<String>,
    /// The encoded protobuf message (`istio.workload.Address`, `istio.security.Authorization`).
    pub body: Bytes,
}

impl Resource {
    pub fn new(type_url: &'static str, name: impl Into<String>, message: &impl prost::Message) -> Self {
        Resource { type_url, name: name.into(), aliases: Vec::new(), body: message.encode_to_vec().into() }
    }

    pub fn with_aliases(mut self, aliases: Vec<String>) -> Self {
        self.aliases = aliases;
        self
    }
}

/// A batch of changes, applied atomically: clients see all of it or none of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    /// Whether `upserts` is the whole state: every resource not in it is removed.
    pub full: bool,
    /// New or changed resources (an upsert equal to what is served is a no-op).
    pub upserts: Vec<Resource>,
    /// `(type_url, name)` of resources that are gone.
    pub removals: Vec<(&'static str, String)>,
}

impl ResourceUpdate {
    pub fn is_empty(&self) -> bool {
        !self.full && self.upserts.is_empty() && self.removals.is_empty()
    }
}
