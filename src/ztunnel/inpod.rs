//! Pods handed over by the CNI agent (ZDS): for each, listeners created inside the pod's network
//! namespace, and their removal when the pod goes.
//!
//! A pod's listeners live as long as its [`PodEntry`]: deleting the pod stops the accept loops at
//! once; connections already open keep going for the drain timeout, then are cut.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::model::Identity;
use crate::sys::netns::Netns;
use crate::sys::socket::tcp_listener_in;
use crate::tls::WorkloadCertificate;
use crate::zds::PodInfo;
use crate::zds::client::PodHandler;
use crate::ztunnel::config::{HBONE_PORT, INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT};
use crate::ztunnel::proxy::Proxy;
use crate::ztunnel::{inbound, outbound};

/// One pod ztunnel serves: who it is, where its namespace is, and what its connections share.
pub struct Pod {
    pub info: PodInfo,
    pub identity: Identity,
    pub netns: Netns,
    /// The pod's uid in xDS (`<cluster>//Pod/<ns>/<name>`).
    pub xds_uid: String,
    /// Turns true when the pod is removed: HBONE connections send GOAWAY and take no new
    /// streams.
    pub retired: watch::Receiver<bool>,
    /// Turns true when the pod's drain time is over: its connections end.
    pub cut: watch::Receiver<bool>,
    /// Server TLS configuration for 15008, rebuilt when the pod's certificate changes.
    pub server_tls: Mutex<Option<(Arc<WorkloadCertificate>, Arc<rustls::ServerConfig>)>>,
    /// Source ports for connections to the pod's own application.
    pub app_ports: crate::sys::socket::SourcePorts,
}

impl Pod {
    /// Resolves when the pod is removed (its connections drain from then on).
    pub async fn retired(&self) {
        let mut retired = self.retired.clone();
        let _ = retired.wait_for(|retired| *retired).await;
    }

    /// Resolves when the pod's connections must end.
    pub async fn cut(&self) {
        let mut cut = self.cut.clone();
        // An error means the sender is gone: the manager dropped the pod without a drain.
        let _ = cut.wait_for(|cut| *cut).await;
    }
}

struct PodEntry {
    pod: Arc<Pod>,
    accept_loops: Vec<JoinHandle<()>>,
    retired: watch::Sender<bool>,
    cut: watch::Sender<bool>,
}

impl PodEntry {
    /// Stops accepting now; cuts open connections after `drain`.
    fn retire(self, data: &Handle, drain: std::time::Duration) {
        for task in &self.accept_loops {
            task.abort();
        }
        let _ = self.retired.send(true);
        let cut = self.cut;
        data.spawn(async move {
            tokio::time::sleep(drain).await;
            let _ = cut.send(true);
        });
    }
}

/// The pods of this node, by ZDS uid.
pub struct PodManager {
    proxy: Arc<Proxy>,
    data: Handle,
    pods: Mutex<HashMap<String, PodEntry>>,
    count: watch::Sender<usize>,
}

impl PodManager {
    pub fn new(proxy: Arc<Proxy>, data: Handle) -> Arc<Self> {
        Arc::new(PodManager { proxy, data, pods: Mutex::new(HashMap::new()), count: watch::channel(0).0 })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of pods served; watch it to wait for a pod to be added or removed.
    pub fn count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Pods served, for the admin API.
    pub fn dump(&self) -> serde_json::Value {
        let pods = self.lock();
        let mut list: Vec<_> = pods
            .iter()
            .map(|(uid, entry)| {
                serde_json::json!({
                    "uid": uid,
                    "name": entry.pod.info.name,
                    "namespace": entry.pod.info.namespace,
                    "serviceAccount": entry.pod.info.service_account,
                    "identity": entry.pod.identity.to_string(),
                    "netnsInode": entry.pod.netns.inode(),
                })
            })
            .collect();
        list.sort_by(|a, b| a["uid"].as_str().cmp(&b["uid"].as_str()));
        serde_json::Value::Array(list)
    }

    /// Identities of the pods served: the certificates worth keeping.
    pub fn identities(&self) -> HashSet<Identity> {
        self.lock().values().map(|entry| entry.pod.identity.clone()).collect()
    }

    fn publish_count(&self, pods: &HashMap<String, PodEntry>) {
        self.proxy.metrics.pods.set(i64::try_from(pods.len()).unwrap_or(i64::MAX));
        self.count.send_replace(pods.len());
    }

    async fn start_pod(&self, info: PodInfo, netns: Netns) -> Result<PodEntry, String> {
        let identity = Identity::new(&self.proxy.config.trust_domain, &info.namespace, &info.service_account)
            .map_err(|e| format!("pod {}/{}: no valid identity: {e}", info.namespace, info.name))?;
        let (cut_sender, cut) = watch::channel(false);
        let (retired_sender, retired) = watch::channel(false);
        let pod = Arc::new(Pod {
            xds_uid: self.proxy.pod_uid(&info.namespace, &info.name),
            info,
            identity,
            netns,
            retired,
            cut,
            server_tls: Mutex::new(None),
            app_ports: crate::sys::socket::SourcePorts::new(),
        });
        let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        let exec = &self.proxy.netns;
        let netns = &pod.netns;
        let listen = |port, transparent| {
            let exec = exec.clone();
            let netns = netns.clone();
            async move {
                tcp_listener_in(&exec, &netns, any(port), transparent)
                    .await
                    .map_err(|e| format!("cannot listen on port {port} in the pod's network namespace: {e}"))
            }
        };
        // Inbound listeners are transparent so that TPROXY redirection (Istio's CNI rules) works
        // as well as REDIRECT (ours).
        let outbound_listener = listen(OUTBOUND_PORT, false).await?;
        let plaintext_listener = listen(INBOUND_PLAINTEXT_PORT, true).await?;
        let hbone_listener = listen(HBONE_PORT, true).await?;
        let accept_loops = vec![
            self.spawn_accept(outbound_listener, pod.clone(), Listener::Outbound),
            self.spawn_accept(plaintext_listener, pod.clone(), Listener::InboundPlaintext),
            self.spawn_accept(hbone_listener, pod.clone(), Listener::InboundHbone),
        ];
        // Fetch the certificate now, so that the pod's first connection does not wait for it.
        let certs = self.proxy.certs.clone();
        let id = pod.identity.clone();
        self.data.spawn(async move {
            if let Err(error) = certs.fetch(&id).await {
                warn!(identity = %id, %error, "cannot fetch the pod's certificate yet; will retry on first use");
            }
        });
        Ok(PodEntry { pod, accept_loops, retired: retired_sender, cut: cut_sender })
    }

    fn spawn_accept(&self, listener: TcpListener, pod: Arc<Pod>, kind: Listener) -> JoinHandle<()> {
        let proxy = self.proxy.clone();
        self.data.spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off a little rather than spin.
                        warn!(pod = %pod.info.name, ?kind, %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let proxy = proxy.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    // Each kind in a box of its own size: inline, every connection's task would be
                    // as large as the largest of the three (the HBONE server's), for its whole life.
                    let serve: BoxFuture<'_, ()> = match kind {
                        Listener::Outbound => Box::pin(outbound::serve(&proxy, &pod, stream, peer)),
                        Listener::InboundPlaintext => Box::pin(inbound::serve_plaintext(&proxy, &pod, stream, peer)),
                        Listener::InboundHbone => Box::pin(inbound::serve_hbone(&proxy, &pod, stream, peer)),
                    };
                    tokio::select! {
                        () = serve => {}
                        () = pod.cut() => debug!(pod = %pod.info.name, "connection cut: the pod was removed"),
                    }
                });
            }
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Listener {
    Outbound,
    InboundPlaintext,
    InboundHbone,
}

impl PodHandler for PodManager {
    fn add(&self, info: PodInfo, netns: Netns) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let uid = info.uid.clone();
            if let Some(existing) = self.lock().get(&uid)
                && existing.pod.netns.inode() == netns.inode()
            {
                debug!(%uid, "pod already served");
                return Ok(());
            }
            // Re-added with another namespace (its sandbox was recreated): serve the new one, then
            // retire the old listeners; they live in the other namespace, so both can coexist.
            let entry = self.start_pod(info, netns).await?;
            info!(%uid, pod = %entry.pod.info.name, namespace = %entry.pod.info.namespace, "serving pod");
            let mut pods = self.lock();
            if let Some(old) = pods.insert(uid, entry) {
                old.retire(&self.data, self.proxy.config.drain_timeout);
            }
            self.publish_count(&pods);
            Ok(())
        })
    }

    fn keep(&self, uid: &str) -> BoxFuture<'_, Result<(), String>> {
        let result = if self.lock().contains_key(uid) {
            Ok(())
        } else {
            Err(format!("pod {uid} is not served by this ztunnel"))
        };
        Box::pin(async move { result })
    }

    fn del(&self, uid: &str) -> BoxFuture<'_, ()> {
        let mut pods = self.lock();
        if let Some(entry) = pods.remove(uid) {
            info!(%uid, pod = %entry.pod.info.name, "pod removed; draining its connections");
            entry.retire(&self.data, self.proxy.config.drain_timeout);
        }
        self.publish_count(&pods);
        Box::pin(async {})
    }

    fn snapshot_done(&self, seen: &HashSet<String>) -> BoxFuture<'_, ()> {
        let stale: Vec<PodEntry> = {
            let mut pods = self.lock();
            let gone: Vec<String> = pods.keys().filter(|uid| !seen.contains(*uid)).cloned().collect();
            let stale = gone.iter().filter_map(|uid| pods.remove(uid)).collect();
            self.publish_count(&pods);
            stale
        };
        for entry in stale {
            info!(uid = %entry.pod.info.uid, "pod not in the agent's snapshot; removing it");
            entry.retire(&self.data, self.proxy.config.drain_timeout);
        }
        Box::pin(async {})
    }
}
