//! The runtime's one shared view of the mesh ([`MeshState`]): tasks update it through
//! [`Board::update`], and every update wakes the state-file writer and the publisher.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::state::{MeshState, StateDir};

pub struct Board {
    state: Mutex<MeshState>,
    version: watch::Sender<u64>,
}

impl Board {
    pub fn new(state: MeshState) -> Arc<Board> {
        Arc::new(Board { state: Mutex::new(state), version: watch::channel(0).0 })
    }

    fn lock(&self) -> MutexGuard<'_, MeshState> {
        // Every update is a short, complete edit; a panic elsewhere cannot leave it half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Edits the state and wakes the watchers.
    pub fn update<R>(&self, edit: impl FnOnce(&mut MeshState) -> R) -> R {
        let result = edit(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        result
    }

    /// Reads without waking anyone.
    pub fn read<R>(&self, view: impl FnOnce(&MeshState) -> R) -> R {
        view(&self.lock())
    }

    pub fn snapshot(&self) -> MeshState {
        self.lock().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Writes the state file after every change (coalescing bursts), until the board goes away.
pub async fn write_state_file(board: Arc<Board>, dir: StateDir) {
    let mut changes = board.subscribe();
    loop {
        let state = board.snapshot();
        if let Err(e) = dir.save(&state) {
            tracing::warn!("{e}");
        }
        if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        changes.borrow_and_update();
    }
}
