//! The agent's view of its pods: which are in the mesh (redirected, with an open handle on their
//! network namespace) and the stream of changes the ZDS connection forwards to ztunnel. All
//! state changes happen here, under one short std lock never held across an await.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use crate::mesh::WorkloadKey;
use crate::sys::netns::Netns;
use crate::zds::PodInfo;

/// How many changes a ZDS connection may fall behind before it is dropped (ztunnel then
/// reconnects and gets a fresh snapshot).
const UPDATE_BUFFER: usize = 4096;

/// A change for ztunnel.
#[derive(Clone, Debug)]
pub(crate) enum ZdsUpdate {
    Add { info: PodInfo, netns: Netns },
    Del { uid: String },
}

/// A pod in the mesh.
#[derive(Clone, Debug)]
pub(crate) struct ActivePod {
    pub info: PodInfo,
    pub netns: Netns,
    /// The pod's addresses (for the node-side probe rules).
    pub ips: Vec<std::net::IpAddr>,
}

#[derive(Default)]
struct State {
    active: HashMap<WorkloadKey, ActivePod>,
    /// Pods the plugin reported deleted while the store still lists them: never rediscovered
    /// (their namespace may linger a moment), until the store drops them or the plugin adds them.
    deleted: HashSet<WorkloadKey>,
    /// Uids whose current Add ztunnel has acknowledged.
    acked: HashSet<String>,
}

pub(crate) struct Pods {
    state: Mutex<State>,
    updates: broadcast::Sender<ZdsUpdate>,
    /// Signals each acknowledgement, for callers waiting in [`Pods::wait_acked`].
    acks: watch::Sender<()>,
}

impl Pods {
    pub fn new() -> Self {
        Pods { state: Mutex::default(), updates: broadcast::channel(UPDATE_BUFFER).0, acks: watch::channel(()).0 }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a few map operations; a poisoned lock still holds consistent maps.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pods in the mesh now, and every change after, with no gap.
    pub fn subscribe(&self) -> (Vec<ActivePod>, broadcast::Receiver<ZdsUpdate>) {
        let state = self.lock();
        let receiver = self.updates.subscribe();
        let mut pods: Vec<_> = state.active.values().cloned().collect();
        pods.sort_by(|a, b| a.info.uid.cmp(&b.info.uid));
        (pods, receiver)
    }

    pub fn active(&self, key: &WorkloadKey) -> Option<ActivePod> {
        self.lock().active.get(key).cloned()
    }

    /// IPv4 addresses of the pods in the mesh, sorted.
    pub fn active_ipv4(&self) -> Vec<std::net::Ipv4Addr> {
        let mut ips: Vec<_> = self
            .lock()
            .active
            .values()
            .flat_map(|pod| pod.ips.iter())
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) => Some(*v4),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }

    pub fn active_keys(&self) -> Vec<WorkloadKey> {
        self.lock().active.keys().cloned().collect()
    }

    pub fn active_infos(&self) -> Vec<PodInfo> {
        let mut infos: Vec<_> = self.lock().active.values().map(|pod| pod.info.clone()).collect();
        infos.sort_by(|a, b| a.uid.cmp(&b.uid));
        infos
    }

    pub fn was_deleted(&self, key: &WorkloadKey) -> bool {
        self.lock().deleted.contains(key)
    }

    /// The pod is in the mesh with `netns`. A pod already there with the same namespace and
    /// identity is left alone (ztunnel already has it); with another namespace (a new sandbox)
    /// ztunnel gets a Del of the old one, then the Add.
    /// `from_plugin`: the plugin added it (a new sandbox); otherwise it was found running, and a
    /// pod the plugin deleted meanwhile stays out. Returns whether the pod is now in the mesh.
    pub fn activate(&self, key: WorkloadKey, pod: ActivePod, from_plugin: bool) -> bool {
        let mut state = self.lock();
        if from_plugin {
            state.deleted.remove(&key);
        } else if state.deleted.contains(&key) {
            return false;
        }
        if let Some(old) = state.active.get(&key) {
            if old.netns == pod.netns && old.info == pod.info {
                if old.ips != pod.ips {
                    state.active.insert(key, pod);
                }
                return true;
            }
            let _ = self.updates.send(ZdsUpdate::Del { uid: old.info.uid.clone() });
        }
        state.acked.remove(&pod.info.uid);
        let _ = self.updates.send(ZdsUpdate::Add { info: pod.info.clone(), netns: pod.netns.clone() });
        state.active.insert(key, pod);
        true
    }

    /// The pod leaves the mesh; `plugin_deleted` remembers it so it is not rediscovered while
    /// the store still lists it. Returns what it was, if it was in the mesh.
    pub fn deactivate(&self, key: &WorkloadKey, plugin_deleted: bool) -> Option<ActivePod> {
        let mut state = self.lock();
        if plugin_deleted {
            state.deleted.insert(key.clone());
        }
        let removed = state.active.remove(key);
        if let Some(pod) = &removed {
            state.acked.remove(&pod.info.uid);
            let _ = self.updates.send(ZdsUpdate::Del { uid: pod.info.uid.clone() });
        }
        removed
    }

    /// ztunnel acknowledged the Add of `uid`.
    pub fn acked(&self, uid: &str) {
        self.lock().acked.insert(uid.to_string());
        self.acks.send_replace(());
    }

    /// Waits until ztunnel has acknowledged the Add of `uid`, at most `timeout`.
    pub async fn wait_acked(&self, uid: &str, timeout: std::time::Duration) -> bool {
        let mut acks = self.acks.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.lock().acked.contains(uid) {
                return true;
            }
            match tokio::time::timeout_at(deadline, acks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.lock().acked.contains(uid),
            }
        }
    }

    /// The store no longer lists the pod.
    pub fn forget_deleted(&self, key: &WorkloadKey) {
        self.lock().deleted.remove(key);
    }
}
