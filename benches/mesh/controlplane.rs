//! Control plane push benchmark core, shared by `benches/controlplane.rs` (its own report) and
//! `benches/mesh.rs` (the figures of the mesh table), so both quote the same code.
//!
//! Runs the real `ambient controlplane` binary (files mode) on 127.0.0.1 with `pods` pods and
//! `services` services, connects `clients` wildcard xDS clients (the project's own client, as
//! ztunnel uses it), then repeatedly adds a pod and times until the last client has it. The
//! baseline in the same run is the same change reaching a single client.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ambient::xds::client::{Client, ClientConfig, NodeInfo, Subscription, TlsOptions, TokenSource};
use ambient::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};

/// How big a mesh to load and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub pods: usize,
    pub services: usize,
    pub clients: usize,
    pub rounds: usize,
}

/// What one run measured (durations are medians over the rounds).
#[derive(Debug, Clone)]
pub struct Report {
    pub sizes: Sizes,
    /// From start to ready (load + translate).
    pub ready: Duration,
    /// The first change after start, which pays for watcher and allocator warm-up.
    pub warmup: Duration,
    /// A change reaching one client.
    pub baseline: Duration,
    /// A change reaching the last of `clients` clients.
    pub fanout: Duration,
    pub initial_sync: Duration,
    pub rss_ready_kib: u64,
    pub rss_loaded_kib: u64,
    pub rss_after_kib: u64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `pods` pods in 10 namespaces, `services` services selecting them, a policy per namespace.
fn write_mesh(dir: &Path, pods: usize, services: usize) {
    let mut text = String::new();
    for ns in 0..10 {
        text += &format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{ns}, labels: {{istio.io/dataplane-mode: ambient}}}}\n\
             ---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow, namespace: ns{ns}}}\n\
             spec: {{rules: [{{from: [{{source: {{namespaces: [ns{ns}]}}}}]}}]}}\n"
        );
    }
    for s in 0..services {
        let ns = s % 10;
        text += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{s}, namespace: ns{ns}}}\n\
             spec: {{clusterIP: 10.96.{}.{}, selector: {{app: app{s}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n",
            s / 250,
            s % 250 + 1
        );
    }
    for p in 0..pods {
        let s = p % services;
        let ns = s % 10;
        text += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod{p}, namespace: ns{ns}, labels: {{app: app{s}}}}}\n\
             spec: {{serviceAccountName: sa{s}, nodeName: node{}, containers: [{{name: c, image: c}}]}}\n\
             status: {{podIP: 10.{}.{}.{}}}\n",
            p % 100,
            1 + p / 62500,
            (p / 250) % 250,
            p % 250 + 1
        );
    }
    std::fs::write(dir.join("config/mesh.yaml"), text).unwrap();
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` memory line (`VmRSS:`, `RssAnon:`, ...) in KiB; 0 if unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The control plane process, killed when dropped (also on panic).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(port: u16, root: &[u8], id: usize) -> Client {
    let mut config = ClientConfig::new(format!("https://127.0.0.1:{port}"), NodeInfo::new(format!("bench~{id}")));
    config.tls = Some(TlsOptions { root_ca_pem: root.to_vec(), server_name: Some("localhost".to_string()) });
    config.token = Some(TokenSource::Value("bench".to_string()));
    config.subscriptions = vec![Subscription::wildcard(ADDRESS_TYPE), Subscription::wildcard(AUTHORIZATION_TYPE)];
    Client::start(config).unwrap()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Adds pod `name` and returns the time until every client has it.
async fn change(dir: &Path, name: &str, clients: &[Client]) -> Duration {
    let uid = format!("Kubernetes//Pod/ns0/{name}");
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ns0, labels: {{app: app0}}}}\n\
         spec: {{nodeName: node0, containers: [{{name: c, image: c}}]}}\nstatus: {{podIP: 10.200.0.{}}}\n",
        name.len()
    );
    let tmp = dir.join(format!("config/.{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    let started = Instant::now();
    std::fs::rename(&tmp, dir.join(format!("config/{name}.yaml"))).unwrap();
    for client in clients {
        tokio::time::timeout(Duration::from_secs(60), client.wait_until(|c| c.get(ADDRESS_TYPE, &uid).is_some()))
            .await
            .expect("the change reaches every client")
            .unwrap();
    }
    started.elapsed()
}

/// Runs the benchmark against `binary` (the `ambient` executable).
pub async fn run(binary: &Path, sizes: Sizes) -> Report {
    ambient::tls::install_default_provider();
    let Sizes { pods, services, clients: clients_n, rounds } = sizes;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    write_mesh(dir.path(), pods, services);
    std::fs::write(dir.path().join("tokens"), "bench istio-system/ztunnel node=node0\n").unwrap();
    let (xds, debug) = (free_port(), free_port());
    let child = Command::new(binary)
        .args(["controlplane", "--config-source", "files", "--log-level", "warn"])
        .arg("--config")
        .arg(dir.path().join("config"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--tokens-file")
        .arg(dir.path().join("tokens"))
        .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--debug-address", &format!("127.0.0.1:{debug}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting ambient controlplane");
    let process = Process(child);
    let pid = process.0.id();
    let started = Instant::now();
    let root_path = dir.path().join("state/ca/root-cert.pem");
    let ready = loop {
        let up = std::process::Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{debug}/healthz/ready")])
            .output()
            .expect("curl is installed (install.sh installs it)")
            .status
            .success();
        if up {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "control plane not ready in 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rss_ready_kib = rss_kib(pid);
    let root = std::fs::read(&root_path).unwrap();

    let single = vec![client(xds, &root, 0)];
    let expected = pods + services;
    let synced = |c: &Client| c.resources(ADDRESS_TYPE).len() >= expected;
    single[0].wait_until(synced).await.unwrap();
    let warmup = change(dir.path(), "warmup", &single).await;
    let mut baseline = Vec::new();
    for round in 0..rounds {
        baseline.push(change(dir.path(), &format!("base{round}"), &single).await);
    }
    drop(single);

    let connect_started = Instant::now();
    let clients: Vec<Client> = (1..=clients_n).map(|id| client(xds, &root, id)).collect();
    for c in &clients {
        tokio::time::timeout(Duration::from_secs(300), c.wait_until(synced)).await.expect("initial sync").unwrap();
    }
    let initial_sync = connect_started.elapsed();
    let rss_loaded_kib = rss_kib(pid);
    let mut fanout = Vec::new();
    for round in 0..rounds {
        fanout.push(change(dir.path(), &format!("fan{round}"), &clients).await);
    }
    let rss_after_kib = rss_kib(pid);
    drop(clients);
    drop(process);
    Report {
        sizes,
        ready,
        warmup,
        baseline: median(baseline),
        fanout: median(fanout),
        initial_sync,
        rss_ready_kib,
        rss_loaded_kib,
        rss_after_kib,
    }
}

impl Report {
    pub fn print(&self) {
        let Sizes { pods, services, clients, rounds } = self.sizes;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!("control plane push benchmark: {pods} pods, {services} services, {rounds} rounds (medians)");
        println!("  files backend debounce (150 ms) is included in every change time");
        println!("  ready after start (load + translate)      {}", ms(self.ready));
        println!("  first change after start (warm-up)        {}", ms(self.warmup));
        println!("  change -> 1 client (baseline)              {}", ms(self.baseline));
        println!("  change -> last of {clients} clients              {}", ms(self.fanout));
        println!(
            "  ratio fan-out / baseline                   {:.2}",
            self.fanout.as_secs_f64() / self.baseline.as_secs_f64()
        );
        println!("  initial full sync of {clients} clients          {}", ms(self.initial_sync));
        println!(
            "  control plane RSS: ready {} MiB, {clients} clients {} MiB, after changes {} MiB",
            self.rss_ready_kib / 1024,
            self.rss_loaded_kib / 1024,
            self.rss_after_kib / 1024
        );
    }

    /// Panics unless every figure is plausible (the smoke mode's check).
    pub fn assert_sane(&self) {
        for (what, d) in [("baseline", self.baseline), ("fan-out", self.fanout), ("ready", self.ready)] {
            assert!(
                d > Duration::ZERO && d < Duration::from_secs(60),
                "control plane {what} time {d:?} is implausible"
            );
        }
        assert!(self.rss_ready_kib > 0 && self.rss_after_kib > 0, "control plane RSS was not read");
    }
}
