//! One stream's subscription to one type, and the diff between what the client has and what it
//! should have. Pure logic over a [`CacheState`]: the connection task decides when to run it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::cache::{CacheState, Changes, Entry, TypeState};
use super::status::{SubscriptionStatus, TypeStatus, VersionNonce};

#[cfg(test)]
mod tests;

/// Nonces remembered per type to find the version an ACK refers to.
const NONCES_KEPT: usize = 16;

/// The changes to send to one client for one type.
#[derive(Debug, Default)]
pub struct Delta {
    pub resources: Vec<Arc<Entry>>,
    pub removed: Vec<String>,
    /// When the earliest cache change carried by this delta was applied; `None` when the delta
    /// answers a request rather than a change.
    pub changed_at: Option<Instant>,
    /// The cache revision the delta brings the client to.
    pub revision: u64,
}

/// A client's subscription to one type on one stream.
#[derive(Debug)]
pub struct Subscription {
    pub type_url: &'static str,
    wildcard: bool,
    /// Names subscribed explicitly: primary names or aliases.
    names: HashSet<String>,
    /// Primary name -> version, of what the client has (as far as this server knows).
    sent: HashMap<String, Arc<str>>,
    /// Cache revision the client's state accounts for.
    synced: u64,
    /// Diff the whole state next time: first request, or `*` (un)subscribed.
    full: bool,
    /// Names (or aliases) subscribed after the first request: sent even if the client has them,
    /// so an on-demand request always gets its answer.
    forced: Vec<String>,
    /// Newly subscribed names, answered in `removed_resources` if they do not exist.
    requested: Vec<String>,
    /// The client waits for a response (to its first request, or to a subscribe).
    must_respond: bool,
    pub status: TypeStatus,
    nonces: VecDeque<(String, String)>,
}

impl Subscription {
    pub fn new(type_url: &'static str) -> Self {
        Subscription {
            type_url,
            wildcard: false,
            names: HashSet::new(),
            sent: HashMap::new(),
            synced: 0,
            full: false,
            forced: Vec::new(),
            requested: Vec::new(),
            must_respond: false,
            status: TypeStatus::default(),
            nonces: VecDeque::new(),
        }
    }

    /// Applies a request's subscription changes. `first` = the stream's first request of this
    /// type, when `initial_versions` (the client's claims from a previous stream) count.
    pub fn on_request(
        &mut self,
        state: &CacheState,
        first: bool,
        subscribe: Vec<String>,
        unsubscribe: Vec<String>,
        initial_versions: HashMap<String, String>,
    ) {
        if first {
            // Envoy: a first request naming nothing is a (legacy) wildcard subscription.
            self.wildcard = subscribe.is_empty() && unsubscribe.is_empty();
            self.sent = initial_versions.into_iter().map(|(name, version)| (name, version.into())).collect();
            self.full = true;
            self.must_respond = true;
        }
        let was_wildcard = self.wildcard;
        for name in subscribe {
            if name == "*" {
                self.wildcard = true;
                self.full = true;
                continue;
            }
            self.must_respond = true;
            if !first {
                self.forced.push(name.clone());
            }
            self.requested.push(name.clone());
            self.names.insert(name);
        }
        let mut dropped = Vec::new();
        for name in unsubscribe {
            if name == "*" {
                self.wildcard = false;
            } else if self.names.remove(&name) {
                dropped.push(name);
            }
        }
        self.status.subscription = self.subscription_status();
        if first {
            return;
        }
        // The client forgets what it unsubscribes from (Envoy: no removal is sent), so forget
        // it here too, unless another subscribed name still covers it.
        let types = state.of_type(self.type_url);
        if was_wildcard && !self.wildcard {
            let names: Vec<String> = self.sent.keys().cloned().collect();
            self.forget_unsubscribed(types, names);
        } else if !dropped.is_empty() {
            let primaries =
                dropped.iter().map(|n| types.lookup(n).map_or_else(|| n.clone(), |e| e.name.clone())).collect();
            self.forget_unsubscribed(types, primaries);
        }
    }

    fn forget_unsubscribed(&mut self, types: &TypeState, primaries: Vec<String>) {
        for primary in primaries {
            if types.get(&primary).is_none_or(|e| !self.covers(e)) {
                self.sent.remove(&primary);
            }
        }
    }

    /// Whether the subscription includes this resource.
    fn covers(&self, entry: &Entry) -> bool {
        self.wildcard || self.names.contains(&entry.name) || entry.aliases.iter().any(|a| self.names.contains(a))
    }

    /// Whether [`Subscription::next_delta`] may have something to send, given the revision of
    /// the last change to this type.
    pub fn has_work(&self, type_revision: u64) -> bool {
        self.full || self.must_respond || !self.forced.is_empty() || type_revision > self.synced
    }

    /// What the client lacks, and records it as sent. `None` when there is nothing to send.
    pub fn next_delta(&mut self, state: &CacheState) -> Option<Delta> {
        let types = state.of_type(self.type_url);
        let mut changed_at = None;
        let mut candidates: HashSet<Arc<str>> = HashSet::new();
        let mut everything = self.full;
        if !everything {
            match state.changes_since(self.type_url, self.synced) {
                Changes::Names(names, at) => {
                    candidates = names;
                    changed_at = at;
                }
                Changes::Trimmed => everything = true,
            }
        }
        if everything {
            candidates.extend(self.sent.keys().map(|n| Arc::from(n.as_str())));
            if self.wildcard {
                candidates.extend(types.entries().map(|e| Arc::from(e.name.as_str())));
            } else {
                candidates.extend(self.names.iter().filter_map(|n| types.lookup(n)).map(|e| e.name.as_str().into()));
            }
        }
        let forced: HashSet<&str> =
            self.forced.iter().filter_map(|n| types.lookup(n)).map(|e| e.name.as_str()).collect();
        candidates.extend(forced.iter().map(|n| Arc::from(*n)));

        let mut delta = Delta { changed_at, revision: state.revision(), ..Delta::default() };
        for name in &candidates {
            match types.get(name) {
                Some(entry) if self.covers(entry) => {
                    let current = self.sent.get(&**name);
                    if current != Some(&entry.version) || forced.contains(&**name) {
                        self.sent.insert(entry.name.clone(), entry.version.clone());
                        delta.resources.push(entry.clone());
                    }
                }
                _ => {
                    if self.sent.remove(&**name).is_some() {
                        delta.removed.push(name.to_string());
                    }
                }
            }
        }
        // As Istio does: a requested name that does not exist is answered as removed, so the
        // client stops waiting for it.
        for name in self.requested.drain(..) {
            if types.lookup(&name).is_none() && !delta.removed.contains(&name) {
                delta.removed.push(name);
            }
        }
        self.synced = state.revision();
        self.full = false;
        self.forced.clear();
        let must_respond = std::mem::take(&mut self.must_respond);
        if delta.resources.is_empty() && delta.removed.is_empty() && !must_respond {
            return None;
        }
        Some(delta)
    }

    /// Records a response handed to the transport.
    pub fn on_sent(&mut self, nonce: &str, version: &str) {
        self.status.pushes += 1;
        self.status.last_sent = Some(VersionNonce { version: version.to_string(), nonce: nonce.to_string() });
        self.status.resources = self.sent.len();
        if self.nonces.len() == NONCES_KEPT {
            self.nonces.pop_front();
        }
        self.nonces.push_back((nonce.to_string(), version.to_string()));
    }

    /// Records an ACK (`error` is `None`) or a NACK of the response with `nonce`. A NACK does
    /// not change what the server believes the client has: the rejected resources are sent
    /// again only when they change, never in a loop.
    pub fn on_reply(&mut self, nonce: &str, error: Option<String>) {
        let version = self.nonces.iter().find(|(n, _)| n == nonce).map(|(_, v)| v.clone()).unwrap_or_default();
        match error {
            None => self.status.last_acked = Some(VersionNonce { version, nonce: nonce.to_string() }),
            Some(message) => {
                self.status.nacks += 1;
                self.status.last_nack = Some(message);
            }
        }
    }

    pub fn subscription_status(&self) -> SubscriptionStatus {
        if self.wildcard {
            SubscriptionStatus::Wildcard { names: self.names.len() }
        } else {
            SubscriptionStatus::Names { names: self.names.len() }
        }
    }
}
