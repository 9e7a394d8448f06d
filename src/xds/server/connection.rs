//! One delta ADS stream: reads the client's requests, and computes what to send only when the
//! transport can take it. A client that does not read its responses therefore costs one queued
//! response and its subscription state, never a backlog: the changes it misses coalesce into
//! the next diff.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use tracing::{debug, warn};

use super::Shared;
use super::metrics::TypeLabel;
use super::status::ConnectionStatus;
use super::subscription::Subscription;
use crate::xds::proto::Any;
use crate::xds::proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as XdsResource};
use crate::xds::proto::google::protobuf::{Struct, value::Kind};

pub(super) type ResponseSender = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

pub(super) struct Connection {
    shared: Arc<Shared>,
    id: u64,
    status: Arc<Mutex<ConnectionStatus>>,
    subscriptions: Vec<Subscription>,
    /// Round-robin start, so one busy type cannot starve another.
    next_type: usize,
    sequence: u64,
    node_id: String,
    warned_types: HashSet<String>,
}

impl Connection {
    pub(super) fn new(shared: Arc<Shared>, id: u64, status: Arc<Mutex<ConnectionStatus>>) -> Self {
        Connection {
            shared,
            id,
            status,
            subscriptions: Vec::new(),
            next_type: 0,
            sequence: 0,
            node_id: String::new(),
            warned_types: HashSet::new(),
        }
    }

    pub(super) async fn run(mut self, mut requests: Streaming<DeltaDiscoveryRequest>, responses: ResponseSender) {
        let mut revisions = self.shared.cache.subscribe();
        let mut close = self.shared.close.subscribe();
        close.borrow_and_update();
        loop {
            let pending = self.has_work();
            tokio::select! {
                biased;
                _ = close.changed() => {
                    debug!(connection = self.id, node = %self.node_id, "closing the stream: server asked");
                    break;
                }
                message = requests.message() => match message {
                    Ok(Some(request)) => self.on_request(request),
                    Ok(None) => break,
                    Err(status) => {
                        debug!(connection = self.id, node = %self.node_id, %status, "request stream ended");
                        break;
                    }
                },
                // Only when the transport has room: what to send is computed now, from the
                // latest state, not when the change happened.
                permit = responses.reserve(), if pending => match permit {
                    Ok(permit) => self.send_next(permit),
                    Err(_) => break,
                },
                changed = revisions.changed() => if changed.is_err() {
                    break;
                },
            }
        }
    }

    fn has_work(&self) -> bool {
        if self.subscriptions.is_empty() {
            return false;
        }
        self.shared
            .cache
            .read(|state| self.subscriptions.iter().any(|s| s.has_work(state.of_type(s.type_url).revision())))
    }

    fn on_request(&mut self, request: DeltaDiscoveryRequest) {
        if let Some(node) = &request.node
            && self.node_id.is_empty()
        {
            self.node_id = node.id.clone();
            let metadata = node.metadata.as_ref();
            let mut status = self.lock_status();
            status.node_id = node.id.clone();
            status.pod_name = metadata.and_then(|m| string_field(m, "NAME"));
            status.pod_namespace = metadata.and_then(|m| string_field(m, "NAMESPACE"));
            status.node_name = metadata.and_then(|m| string_field(m, "NODE_NAME"));
        }
        let Some(type_url) = self.shared.options.types.iter().copied().find(|t| *t == request.type_url) else {
            if self.warned_types.insert(request.type_url.clone()) {
                warn!(
                    connection = self.id,
                    node = %self.node_id,
                    type_url = %request.type_url,
                    "ignoring requests for a type this server does not serve"
                );
            }
            return;
        };
        let (index, first) = match self.subscriptions.iter().position(|s| s.type_url == type_url) {
            Some(index) => (index, false),
            None => {
                self.subscriptions.push(Subscription::new(type_url));
                (self.subscriptions.len() - 1, true)
            }
        };
        let subscription = &mut self.subscriptions[index];
        if !request.response_nonce.is_empty() {
            let error = request.error_detail.map(|e| e.message);
            if let Some(message) = &error {
                warn!(
                    connection = self.id,
                    node = %self.node_id,
                    type_url,
                    nonce = %request.response_nonce,
                    error = %message,
                    "client rejected a response (NACK)"
                );
                self.shared.metrics.nacks.get_or_create(&TypeLabel::of(type_url)).inc();
            }
            subscription.on_reply(&request.response_nonce, error);
        }
        let changes_subscription =
            !request.resource_names_subscribe.is_empty() || !request.resource_names_unsubscribe.is_empty() || first;
        if changes_subscription {
            let (subscribe, unsubscribe) = (request.resource_names_subscribe, request.resource_names_unsubscribe);
            let initial = request.initial_resource_versions;
            self.shared.cache.read(|state| subscription.on_request(state, first, subscribe, unsubscribe, initial));
        }
        let type_status = subscription.status.clone();
        self.lock_status().types.insert(type_url.to_string(), type_status);
    }

    /// Sends the next type's delta, if any type has one.
    fn send_next(&mut self, permit: mpsc::Permit<'_, Result<DeltaDiscoveryResponse, Status>>) {
        let count = self.subscriptions.len();
        for offset in 0..count {
            let index = (self.next_type + offset) % count;
            let subscription = &mut self.subscriptions[index];
            let Some(delta) = self.shared.cache.read(|state| subscription.next_delta(state)) else { continue };
            self.next_type = index + 1;
            self.sequence += 1;
            let type_url = subscription.type_url;
            let nonce = format!("{}-{}", self.id, self.sequence);
            let version = delta.revision.to_string();
            let sent = delta.resources.len();
            let resources = delta
                .resources
                .iter()
                .map(|entry| XdsResource {
                    version: entry.version.to_string(),
                    // Bytes: the body is shared with the cache, not copied.
                    resource: Some(Any { type_url: type_url.to_string(), value: entry.body.clone() }),
                    name: entry.name.clone(),
                    aliases: entry.aliases.clone(),
                    ttl: None,
                    cache_control: None,
                })
                .collect();
            let response = DeltaDiscoveryResponse {
                system_version_info: version.clone(),
                resources,
                type_url: type_url.to_string(),
                nonce: nonce.clone(),
                removed_resources: delta.removed,
            };
            permit.send(Ok(response));
            let label = TypeLabel::of(type_url);
            let metrics = &self.shared.metrics;
            metrics.pushes.get_or_create(&label).inc();
            metrics.resources_sent.get_or_create(&label).inc_by(sent as u64);
            if let Some(at) = delta.changed_at {
                metrics.push_latency.observe(at.elapsed().as_secs_f64());
            }
            subscription.on_sent(&nonce, &version);
            debug!(connection = self.id, node = %self.node_id, type_url, %nonce, resources = sent, "pushed");
            let type_status = subscription.status.clone();
            self.lock_status().types.insert(type_url.to_string(), type_status);
            return;
        }
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, ConnectionStatus> {
        self.status.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn string_field(metadata: &Struct, key: &str) -> Option<String> {
    match metadata.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(value) if !value.is_empty() => Some(value.clone()),
        _ => None,
    }
}
