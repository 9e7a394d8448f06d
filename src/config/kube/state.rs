//! Watcher events into store writes and diagnostics, per kind, and when the store is synced.

use std::collections::{BTreeMap, BTreeSet};

use ::kube::api::DynamicObject;
use ::kube::runtime::watcher::{self, Event};

use super::resources::{Converted, api_resource, convert, object_key};
use super::{SOURCE, describe, scope};
use crate::config::diagnostic::{Code, Diagnostic, Severity};
use crate::config::store::{Store, Write};
use crate::model::{Kind, ObjectRef};

/// What one kind's watch stream yields.
pub(super) type WatchResult = Result<Event<DynamicObject>, watcher::Error>;

/// Everything the backend knows about one watched kind.
struct KindState {
    kind: Kind,
    scope: String,
    /// Keys of this kind's objects in the store (each one's last good version).
    present: BTreeSet<ObjectRef>,
    /// Current problems of single objects.
    problems: BTreeMap<ObjectRef, Vec<Diagnostic>>,
    /// A problem with the kind as a whole: its API is not served, or listing it fails.
    kind_problem: Option<Diagnostic>,
    /// The objects of a (re-)list in progress, from `Init` to `InitDone`.
    relist: Option<Vec<Converted>>,
    /// Completed a list at least once (or found the kind is not served).
    listed: bool,
    /// The last list answered 404.
    not_served: bool,
    /// Diagnostics changed since they were last published.
    dirty: bool,
}

fn is_not_found(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.code == 404)
}

/// A client error in one line: the API's own message for API errors.
fn describe_kube(err: &::kube::Error) -> String {
    match err {
        ::kube::Error::Api(status) => match (status.code, status.reason.as_str()) {
            (0, "") => status.message.clone(),
            (code, "") => format!("{} ({code})", status.message),
            (code, reason) => format!("{} ({code} {reason})", status.message),
        },
        other => describe(other),
    }
}

impl KindState {
    fn new(kind: Kind) -> Self {
        KindState {
            kind,
            scope: scope(kind),
            present: BTreeSet::new(),
            problems: BTreeMap::new(),
            kind_problem: None,
            relist: None,
            listed: false,
            not_served: false,
            dirty: false,
        }
    }

    fn on_event(&mut self, event: WatchResult, writes: &mut Vec<Write>) {
        match event {
            Ok(Event::Init) => self.relist = Some(Vec::new()),
            Ok(Event::InitApply(object)) => {
                self.relist.get_or_insert_with(Vec::new).push(convert(self.kind, object));
            }
            Ok(Event::InitDone) => {
                let objects = self.relist.take().unwrap_or_default();
                if self.not_served {
                    tracing::info!(kind = %self.kind, "API is served now");
                }
                self.not_served = false;
                self.set_kind_problem(None);
                self.finish_list(objects, writes);
            }
            Ok(Event::Apply(object)) => self.apply(convert(self.kind, object), writes),
            Ok(Event::Delete(object)) => {
                let key = object_key(self.kind, &object.metadata);
                self.present.remove(&key);
                if self.problems.remove(&key).is_some() {
                    self.dirty = true;
                }
                writes.push(Write::Remove(key));
            }
            Err(err) => self.on_error(err, writes),
        }
    }

    /// Replaces everything known about the kind with the objects of a complete list.
    fn finish_list(&mut self, objects: Vec<Converted>, writes: &mut Vec<Write>) {
        let mut seen = BTreeSet::new();
        let mut problems: BTreeMap<ObjectRef, Vec<Diagnostic>> = BTreeMap::new();
        for Converted { key, result } in objects {
            seen.insert(key.clone());
            match result {
                Ok(resource) => {
                    writes.push(Write::Put(resource));
                    self.present.insert(key);
                }
                // A broken object keeps its last good version, if it had one.
                Err(diagnostics) => {
                    for d in &diagnostics {
                        tracing::warn!("{d}");
                    }
                    problems.entry(key).or_default().extend(diagnostics);
                }
            }
        }
        let gone: Vec<ObjectRef> = self.present.difference(&seen).cloned().collect();
        if !gone.is_empty() {
            tracing::debug!(kind = %self.kind, removed = gone.len(), "objects missing from the list");
        }
        for key in gone {
            self.present.remove(&key);
            writes.push(Write::Remove(key));
        }
        if problems != self.problems {
            self.problems = problems;
            self.dirty = true;
        }
        self.listed = true;
    }

    /// An added or modified object.
    fn apply(&mut self, converted: Converted, writes: &mut Vec<Write>) {
        let Converted { key, result } = converted;
        match result {
            Ok(resource) => {
                writes.push(Write::Put(resource));
                self.present.insert(key.clone());
                if self.problems.remove(&key).is_some() {
                    self.dirty = true;
                }
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    tracing::warn!("{d}");
                }
                if self.problems.get(&key) != Some(&diagnostics) {
                    self.problems.insert(key, diagnostics);
                    self.dirty = true;
                }
            }
        }
    }

    fn on_error(&mut self, err: watcher::Error, writes: &mut Vec<Write>) {
        let kind = self.kind;
        match &err {
            watcher::Error::InitialListFailed(e) if is_not_found(e) => {
                // Not served: the kind has no objects. Counting that as a complete (empty) list
                // keeps a missing CRD from blocking sync; the watcher retries with backoff.
                if !self.not_served {
                    tracing::warn!(%kind, error = %describe_kube(e), "API not served (CRD not installed?); treating it as empty, retrying");
                }
                self.not_served = true;
                self.relist = None;
                let api = api_resource(kind);
                let mut d = Diagnostic::new(
                    Code::Unreadable,
                    SOURCE,
                    format!(
                        "the API server does not serve {} {} (404); is its CRD installed? Treated as empty until it appears",
                        api.api_version, api.plural
                    ),
                );
                d.severity = Severity::Warning;
                self.set_kind_problem(Some(d));
                self.finish_list(Vec::new(), writes);
            }
            watcher::Error::InitialListFailed(e) => {
                tracing::warn!(%kind, error = %describe_kube(e), "listing failed; retrying");
                self.relist = None;
                let api = api_resource(kind);
                let message = format!("listing {} {} failed: {}", api.api_version, api.plural, describe_kube(e));
                self.set_kind_problem(Some(Diagnostic::new(Code::Unreadable, SOURCE, message)));
            }
            watcher::Error::WatchError(status) if status.code == 410 => {
                tracing::debug!(%kind, "watch expired (410 Gone); re-listing");
            }
            watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
                tracing::warn!(%kind, error = %describe_kube(e), "watch failed; retrying");
            }
            watcher::Error::WatchError(status) => {
                tracing::warn!(%kind, code = status.code, error = %status.message, "watch failed; retrying");
            }
            _ => tracing::warn!(%kind, error = %describe(&err), "watch failed; retrying"),
        }
    }

    fn set_kind_problem(&mut self, problem: Option<Diagnostic>) {
        if self.kind_problem != problem {
            self.kind_problem = problem;
            self.dirty = true;
        }
    }

    /// The kind's current diagnostics, if they changed since last asked.
    fn take_diagnostics(&mut self) -> Option<Vec<Diagnostic>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let all = self.kind_problem.iter().chain(self.problems.values().flatten());
        Some(all.cloned().collect())
    }
}

/// Every watched kind, writing into one store.
pub(super) struct Backend {
    store: Store,
    kinds: BTreeMap<Kind, KindState>,
    synced: bool,
}

impl Backend {
    pub(super) fn new(store: Store, kinds: &[Kind]) -> Self {
        let kinds = kinds.iter().map(|&k| (k, KindState::new(k))).collect();
        Backend { store, kinds, synced: false }
    }

    /// Handles a batch of events that were ready together: one store write for all of them.
    pub(super) fn handle(&mut self, batch: Vec<(Kind, WatchResult)>) {
        let mut writes = Vec::new();
        for (kind, event) in batch {
            let state = self.kinds.entry(kind).or_insert_with(|| KindState::new(kind));
            state.on_event(event, &mut writes);
        }
        if let Some(set) = self.store.apply(writes) {
            tracing::debug!(revision = set.revision, changes = set.changes.len(), "applied watch events");
        }
        for state in self.kinds.values_mut() {
            if let Some(diagnostics) = state.take_diagnostics() {
                self.store.set_diagnostics(&state.scope, diagnostics);
            }
        }
        if !self.synced && self.kinds.values().all(|s| s.listed) {
            self.synced = true;
            self.store.mark_synced();
            let not_served: Vec<&str> = self.kinds.values().filter(|s| s.not_served).map(|s| s.kind.name()).collect();
            tracing::info!(objects = self.store.snapshot().len(), ?not_served, "Kubernetes config synced");
        }
    }
}
