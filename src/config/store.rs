//! The config store: one consistent set of objects, and a stream of exactly what changed.
//!
//! Backends (files, kube) write batches into the store; everything above reads it through
//! [`Store::subscribe`], which hands out a snapshot and the changes after it with no gap and no
//! overlap. Writes that change nothing are dropped, so subscribers only ever see real changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use super::diagnostic::Diagnostic;
use crate::model::{ObjectRef, Resource};

/// How many change batches a slow subscriber may fall behind before it is resynced from a
/// fresh snapshot instead.
const CHANGE_BUFFER: usize = 1024;

/// One write a backend asks for.
// Writes are short-lived (built, applied, dropped), so the size of `Put` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Write {
    Put(Resource),
    Remove(ObjectRef),
}

/// One change a subscriber sees.
#[derive(Debug, Clone)]
pub enum Change {
    /// Added or modified; carries the new version.
    Applied(Arc<Resource>),
    /// Removed; carries the last version the store held.
    Deleted(Arc<Resource>),
}

impl Change {
    pub fn object_ref(&self) -> ObjectRef {
        match self {
            Change::Applied(r) | Change::Deleted(r) => r.object_ref(),
        }
    }
}

/// The changes of one backend write, in order; `revision` is the store's revision after them.
#[derive(Debug)]
pub struct ChangeSet {
    pub revision: u64,
    pub changes: Vec<Change>,
}

/// A consistent view of every object at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: u64,
    pub objects: BTreeMap<ObjectRef, Arc<Resource>>,
}

impl Snapshot {
    pub fn get(&self, key: &ObjectRef) -> Option<&Arc<Resource>> {
        self.objects.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.objects.values()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[derive(Default)]
struct State {
    snapshot: Snapshot,
    /// Current problems, by the backend part that reported them (a file, a watched kind).
    diagnostics: BTreeMap<String, Vec<Diagnostic>>,
}

struct Inner {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<ChangeSet>>,
    synced: watch::Sender<bool>,
}

/// Shared handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("revision", &self.lock().snapshot.revision).finish()
    }
}

impl Store {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (synced, _) = watch::channel(false);
        Store { inner: Arc::new(Inner { state: Mutex::default(), changes, synced }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-written (each write is one
        // insert/remove), so a poisoned lock is still consistent.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current objects.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot.clone()
    }

    /// A snapshot plus every change after it.
    pub fn subscribe(&self) -> Subscription {
        let state = self.lock();
        // Subscribing under the lock: no write can land between the snapshot and the receiver.
        let rx = self.inner.changes.subscribe();
        Subscription {
            store: self.clone(),
            rx,
            revision: state.snapshot.revision,
            initial: Some(state.snapshot.clone()),
        }
    }

    /// Applies a batch of writes atomically and publishes what actually changed.
    pub fn apply(&self, writes: impl IntoIterator<Item = Write>) -> Option<Arc<ChangeSet>> {
        let mut state = self.lock();
        let mut changes = Vec::new();
        for write in writes {
            match write {
                Write::Put(resource) => {
                    let key = resource.object_ref();
                    if state.snapshot.objects.get(&key).is_some_and(|old| **old == resource) {
                        continue;
                    }
                    let resource = Arc::new(resource);
                    state.snapshot.objects.insert(key, resource.clone());
                    changes.push(Change::Applied(resource));
                }
                Write::Remove(key) => {
                    if let Some(old) = state.snapshot.objects.remove(&key) {
                        changes.push(Change::Deleted(old));
                    }
                }
            }
        }
        if changes.is_empty() {
            return None;
        }
        state.snapshot.revision += 1;
        let set = Arc::new(ChangeSet { revision: state.snapshot.revision, changes });
        // No receivers is fine: nobody is listening yet.
        let _ = self.inner.changes.send(set.clone());
        Some(set)
    }

    /// Replaces the problems reported by one part of a backend (`scope`: a file, a kind).
    pub fn set_diagnostics(&self, scope: &str, diagnostics: Vec<Diagnostic>) {
        let mut state = self.lock();
        if diagnostics.is_empty() {
            state.diagnostics.remove(scope);
        } else {
            state.diagnostics.insert(scope.to_string(), diagnostics);
        }
    }

    /// Every current problem, ordered by scope.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.lock().diagnostics.values().flatten().cloned().collect()
    }

    /// Marks the initial load complete: the store now reflects its source.
    pub fn mark_synced(&self) {
        self.inner.synced.send_replace(true);
    }

    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits until the backend has completed its initial load.
    pub async fn synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        // The sender lives in `self`, so this cannot fail while we hold the store.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// What a subscriber receives next.
#[derive(Debug)]
pub enum Update {
    Changes(Arc<ChangeSet>),
    /// The subscriber fell too far behind: here is the whole state again; rebuild from it.
    Resync(Snapshot),
}

/// A live view of the store: [`Subscription::initial`] once, then [`Subscription::next`].
pub struct Subscription {
    store: Store,
    rx: broadcast::Receiver<Arc<ChangeSet>>,
    revision: u64,
    initial: Option<Snapshot>,
}

impl Subscription {
    /// The snapshot this subscription starts from (taken once; later calls get `None`).
    pub fn initial(&mut self) -> Option<Snapshot> {
        self.initial.take()
    }

    /// The next change batch, or a resync after lagging. `None` once the store is gone.
    pub async fn next(&mut self) -> Option<Update> {
        loop {
            match self.rx.recv().await {
                Ok(set) if set.revision <= self.revision => continue,
                Ok(set) => {
                    self.revision = set.revision;
                    return Some(Update::Changes(set));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let snapshot = self.store.snapshot();
                    self.revision = snapshot.revision;
                    return Some(Update::Resync(snapshot));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
