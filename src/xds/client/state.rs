//! The client's view of the served state: per type, name -> resource, an alias index, the
//! on-demand names it subscribed to and the `demand` calls waiting for an answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Changes, Handler, Mode, Rejection};
use crate::xds::proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Status};

/// One resource as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResource {
    pub name: String,
    pub version: String,
    pub aliases: Vec<String>,
    /// The encoded message (`Any.value`), shared with the response it came in.
    pub body: Bytes,
}

impl ClientResource {
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.body.clone())
    }
}

pub(super) type Waiter = oneshot::Sender<Option<Arc<ClientResource>>>;

pub(super) struct TypeState {
    pub(super) type_url: String,
    pub(super) mode: Mode,
    handler: Option<Arc<dyn Handler>>,
    resources: HashMap<String, Arc<ClientResource>>,
    /// alias -> primary name.
    aliases: HashMap<String, String>,
    /// On-demand names subscribed (kept across reconnects).
    pub(super) demanded: HashSet<String>,
    waiters: HashMap<String, Vec<Waiter>>,
    /// Whether a response of this type was ever received.
    pub(super) synced: bool,
}

/// What one response did, for the ACK/NACK and the status.
pub(super) struct Outcome {
    pub(super) reply: DeltaDiscoveryRequest,
    pub(super) rejected: bool,
}

impl TypeState {
    pub(super) fn new(type_url: String, mode: Mode, handler: Option<Arc<dyn Handler>>) -> Self {
        TypeState {
            type_url,
            mode,
            handler,
            resources: HashMap::new(),
            aliases: HashMap::new(),
            demanded: HashSet::new(),
            waiters: HashMap::new(),
            synced: false,
        }
    }

    pub(super) fn lookup(&self, name_or_alias: &str) -> Option<&Arc<ClientResource>> {
        self.resources.get(name_or_alias).or_else(|| self.resources.get(self.aliases.get(name_or_alias)?))
    }

    pub(super) fn resources(&self) -> impl Iterator<Item = &Arc<ClientResource>> {
        self.resources.values()
    }

    pub(super) fn add_waiter(&mut self, name: String, waiter: Waiter) {
        self.waiters.entry(name).or_default().push(waiter);
    }

    /// The first request of this type on a new stream: the subscription, and what the client
    /// already has so the server skips it and removes what is gone.
    pub(super) fn initial_request(&self, node: &Node) -> DeltaDiscoveryRequest {
        let (subscribe, unsubscribe) = match self.mode {
            Mode::Wildcard => (Vec::new(), Vec::new()),
            // Like Istio's ztunnel: `*` both subscribed and unsubscribed = nothing yet.
            Mode::OnDemand if self.demanded.is_empty() => (vec!["*".to_string()], vec!["*".to_string()]),
            Mode::OnDemand => (self.demanded.iter().cloned().collect(), vec!["*".to_string()]),
        };
        DeltaDiscoveryRequest {
            node: Some(node.clone()),
            type_url: self.type_url.clone(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            initial_resource_versions: self.resources.values().map(|r| (r.name.clone(), r.version.clone())).collect(),
            response_nonce: String::new(),
            error_detail: None,
        }
    }

    /// The handler of this type (called without the state lock held).
    pub(super) fn handler(&self) -> Option<Arc<dyn Handler>> {
        self.handler.clone()
    }

    /// Converts a response into the changes handed to the handler: upserts, and removals of
    /// names this client has (a removal of a name it never had, e.g. an on-demand name that
    /// does not exist, only answers waiters).
    pub(super) fn changes_of(&self, response: &DeltaDiscoveryResponse) -> (Vec<Arc<ClientResource>>, Vec<String>) {
        let upserts = response
            .resources
            .iter()
            .map(|r| {
                Arc::new(ClientResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    aliases: r.aliases.clone(),
                    body: r.resource.as_ref().map(|any| any.value.clone()).unwrap_or_default(),
                })
            })
            .collect();
        let removals = response.removed_resources.iter().filter(|n| self.resources.contains_key(*n)).cloned().collect();
        (upserts, removals)
    }

    /// Applies the accepted part of a response and answers waiters. Rejected resources keep
    /// their previous version (so a reconnect asks for them again).
    pub(super) fn apply(
        &mut self,
        response: &DeltaDiscoveryResponse,
        upserts: Vec<Arc<ClientResource>>,
        rejections: &[Rejection],
    ) {
        let rejected: HashSet<&str> = rejections.iter().map(|r| r.name.as_str()).collect();
        for resource in upserts {
            if rejected.contains(resource.name.as_str()) {
                let current = self.resources.get(&resource.name).cloned();
                self.answer(&resource.name, &resource.aliases, current);
                continue;
            }
            if let Some(old) = self.resources.remove(&resource.name) {
                self.unindex(&old);
            }
            for alias in &resource.aliases {
                self.aliases.insert(alias.clone(), resource.name.clone());
            }
            self.answer(&resource.name, &resource.aliases, Some(resource.clone()));
            self.resources.insert(resource.name.clone(), resource);
        }
        for name in &response.removed_resources {
            let aliases = match self.resources.remove(name) {
                Some(old) => {
                    self.unindex(&old);
                    old.aliases.clone()
                }
                None => Vec::new(),
            };
            self.answer(name, &aliases, None);
        }
        self.synced = true;
    }

    /// The resource to drop after `name` was unsubscribed, unless another demanded name still
    /// covers it.
    pub(super) fn unsubscribed(&self, name: &str) -> Option<String> {
        let resource = self.lookup(name)?;
        let covered =
            self.demanded.contains(&resource.name) || resource.aliases.iter().any(|a| self.demanded.contains(a));
        (!covered).then(|| resource.name.clone())
    }

    pub(super) fn remove(&mut self, name: &str) {
        if let Some(old) = self.resources.remove(name) {
            self.unindex(&old);
        }
    }

    fn unindex(&mut self, old: &ClientResource) {
        for alias in &old.aliases {
            if self.aliases.get(alias) == Some(&old.name) {
                self.aliases.remove(alias);
            }
        }
    }

    fn answer(&mut self, name: &str, aliases: &[String], value: Option<Arc<ClientResource>>) {
        for key in std::iter::once(name).chain(aliases.iter().map(String::as_str)) {
            for waiter in self.waiters.remove(key).unwrap_or_default() {
                let _ = waiter.send(value.clone());
            }
        }
    }
}

/// Runs the handler and builds the ACK, or the NACK listing what it rejected.
pub(super) fn handle(
    handler: Option<&dyn Handler>,
    response: &DeltaDiscoveryResponse,
    upserts: &[Arc<ClientResource>],
    removals: &[String],
) -> (Vec<Rejection>, Outcome) {
    let changes = Changes { type_url: &response.type_url, upserts, removals };
    let rejections = match handler.map(|h| h.apply(&changes)) {
        None | Some(Ok(())) => Vec::new(),
        Some(Err(rejections)) => rejections,
    };
    let error_detail = (!rejections.is_empty()).then(|| Status {
        // google.rpc.Code INVALID_ARGUMENT, as Envoy and ztunnel use for rejected config.
        code: 3,
        message: rejections.iter().map(|r| format!("{}: {}", r.name, r.reason)).collect::<Vec<_>>().join("; "),
        details: Vec::new(),
    });
    let rejected = error_detail.is_some();
    let reply = DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        error_detail,
        ..Default::default()
    };
    (rejections, Outcome { reply, rejected })
}
