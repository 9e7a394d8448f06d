//! [`Mesh`]: a [`MeshIndex`] shared between tasks, kept current from a store subscription, with
//! its events broadcast to subscribers.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use super::MeshConfig;
use super::index::MeshIndex;
use super::types::MeshEvent;
use crate::config::{Subscription, Update};

/// How many batches a slow subscriber may fall behind before it gets `Lagged` and has to
/// subscribe again.
const EVENT_BUFFER: usize = 1024;

/// The events of one store change set (or snapshot), after which the index is at `revision`.
#[derive(Debug)]
pub struct MeshBatch {
    pub revision: u64,
    pub events: Vec<MeshEvent>,
}

struct Shared {
    index: RwLock<MeshIndex>,
    events: broadcast::Sender<Arc<MeshBatch>>,
}

/// Shared handle to a mesh index; cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("revision", &self.read(|index| index.revision())).finish()
    }
}

impl Mesh {
    pub fn new(config: MeshConfig) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let index = RwLock::new(MeshIndex::new(config));
        Mesh { shared: Arc::new(Shared { index, events }) }
    }

    fn read_lock(&self) -> RwLockReadGuard<'_, MeshIndex> {
        // A poisoned lock means an update panicked part-way, which is a bug; serving the state
        // as it is beats taking every reader down with it.
        self.shared.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, MeshIndex> {
        self.shared.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the current state. `f` runs under the lock, so keep it short and do not await in it.
    pub fn read<T>(&self, f: impl FnOnce(&MeshIndex) -> T) -> T {
        f(&self.read_lock())
    }

    /// Reads the current state with `f` and subscribes to every batch after it, with no gap and
    /// no overlap (both happen under the lock updates are published under). A receiver that
    /// reports `Lagged` has missed batches and must subscribe again.
    pub fn subscribe<T>(&self, f: impl FnOnce(&MeshIndex) -> T) -> (T, broadcast::Receiver<Arc<MeshBatch>>) {
        let index = self.read_lock();
        let receiver = self.shared.events.subscribe();
        (f(&index), receiver)
    }

    /// Follows `subscription`: loads its initial snapshot (pass a fresh subscription: if its
    /// snapshot was already taken, the index misses that state), then every change set or
    /// resync, publishing each non-empty batch of events. Returns when the store is gone; to
    /// stop it sooner, abort the task running it.
    pub async fn follow(&self, mut subscription: Subscription) {
        if let Some(snapshot) = subscription.initial() {
            self.update(|index| index.reset(&snapshot));
        }
        while let Some(update) = subscription.next().await {
            match update {
                Update::Changes(changes) => self.update(|index| index.apply(&changes)),
                Update::Resync(snapshot) => self.update(|index| index.reset(&snapshot)),
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut MeshIndex) -> Vec<MeshEvent>) {
        let mut index = self.write_lock();
        let events = f(&mut index);
        if events.is_empty() {
            return;
        }
        let batch = MeshBatch { revision: index.revision(), events };
        // No receivers is fine: nobody is listening yet. Sending under the write lock keeps
        // `subscribe` gap-free.
        let _ = self.shared.events.send(Arc::new(batch));
    }
}
