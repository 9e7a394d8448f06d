//! Data-path benchmark: the same client/server pair measured direct (two pods outside the mesh)
//! and through the mesh (client pod -> ztunnel node-a -> HBONE -> ztunnel node-b -> server pod),
//! in the same run, on the test fixtures' network namespaces (nothing leaves them).
//!
//! `cargo bench --bench dataplane` (env: ROUNDS, default 3; SECONDS per throughput run, default 5;
//! WORKERS, data-path threads per ztunnel, default: CPUs).
//! Prints one table: median of ROUNDS for each figure, direct and mesh, and their ratio.
//! Access logs are off in the ztunnels (they write to stdout, which would be measured too).

#[allow(dead_code)]
#[path = "../tests/controlplane/support.rs"]
mod cp;
#[allow(dead_code)]
#[path = "../tests/ztunnel/mesh.rs"]
mod mesh;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ambient::ztunnel::accesslog::AccessLogFormat;
use mesh::{Mesh, PodSpec, default_pods};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ECHO_PORT: u16 = 7000;
const IPERF_PORT: u16 = 5201;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// A client -> server path to measure: which pods, and the server's address.
struct Path {
    name: &'static str,
    client: &'static str,
    server: &'static str,
}

/// Single-stream TCP throughput with iperf3, in Gbit/s.
fn iperf(mesh: &Mesh, path: &Path, seconds: usize) -> f64 {
    let server_ns = mesh.pod(path.server).ns_name.clone();
    let client_ns = mesh.pod(path.client).ns_name.clone();
    let mut server = Command::new("ip")
        .args(["netns", "exec", &server_ns, "iperf3", "-s", "-1", "-p", &IPERF_PORT.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 is installed (install.sh installs it)");
    std::thread::sleep(Duration::from_millis(300));
    let target = mesh.spec(path.server).ip.to_string();
    let output = Command::new("ip")
        .args(["netns", "exec", &client_ns, "iperf3", "-c", &target, "-p", &IPERF_PORT.to_string()])
        .args(["-t", &seconds.to_string(), "-J"])
        .output()
        .expect("iperf3 client runs");
    let _ = server.wait();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("iperf3 JSON report");
    let bits = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: iperf3 failed: {}", path.name, report["error"]));
    bits / 1e9
}

/// 64-byte request/response on one connection: (p50 µs, p99 µs, transactions/s).
async fn ping_pong(mesh: &Mesh, path: &Path, count: usize) -> (f64, f64, f64) {
    let dst = SocketAddr::from((mesh.spec(path.server).ip, ECHO_PORT));
    let mut stream = mesh.connect(path.client, dst).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let message = [7u8; 64];
    let mut answer = [0u8; 64];
    let mut samples = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let sent = Instant::now();
        stream.write_all(&message).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        samples.push(sent.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    (micros(percentile(&samples, 0.5)), micros(percentile(&samples, 0.99)), count as f64 / total.as_secs_f64())
}

/// New connections for `seconds`: connect, 64 bytes each way, close. Connections/s.
async fn connection_rate(mesh: &Mesh, path: &Path, seconds: f64) -> f64 {
    let dst = SocketAddr::from((mesh.spec(path.server).ip, ECHO_PORT));
    let started = Instant::now();
    let mut done = 0u64;
    let mut answer = [0u8; 64];
    while started.elapsed().as_secs_f64() < seconds {
        let mut stream = mesh.connect(path.client, dst).await.expect("connect");
        stream.write_all(&[1u8; 64]).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        drop(stream);
        done += 1;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    ambient::tls::install_default_provider();
    let rounds = env_or("ROUNDS", 3);
    let seconds = env_or("SECONDS", 5);
    let mut pods = default_pods();
    pods.push(PodSpec {
        name: "outsider2",
        namespace: "ext",
        service_account: "default",
        node: "node-a",
        ip: Ipv4Addr::new(10, 10, 1, 9),
        app: "outsider",
    });
    let workers = env_or("WORKERS", std::thread::available_parallelism().map_or(2, usize::from));
    let mesh = Mesh::start_with(pods, &[], |config| {
        config.access_log = AccessLogFormat::Off;
        config.worker_threads = workers;
    })
    .await;
    for pod in ["server", "outsider"] {
        mesh.serve_echo(pod, ECHO_PORT).await;
    }
    let direct = Path { name: "direct", client: "outsider2", server: "outsider" };
    let meshed = Path { name: "mesh", client: "client", server: "server" };

    let mut rows: Vec<(&str, [Vec<f64>; 2])> = [
        "throughput, 1 stream (Gbit/s)",
        "64 B req/resp p50 (µs)",
        "64 B req/resp p99 (µs)",
        "64 B req/resp (transactions/s)",
        "new connections/s, 1 client",
    ]
    .into_iter()
    .map(|name| (name, [Vec::new(), Vec::new()]))
    .collect();
    for round in 0..rounds {
        for (i, path) in [&direct, &meshed].into_iter().enumerate() {
            eprintln!("round {}/{rounds}: {}", round + 1, path.name);
            rows[0].1[i].push(iperf(&mesh, path, seconds));
            let (p50, p99, tps) = ping_pong(&mesh, path, 20_000).await;
            rows[1].1[i].push(p50);
            rows[2].1[i].push(p99);
            rows[3].1[i].push(tps);
            rows[4].1[i].push(connection_rate(&mesh, path, 3.0).await);
            // Let TIME_WAIT sockets of the connection test settle before the next path.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    println!("\n| figure (median of {rounds}) | direct | mesh | mesh / direct |");
    println!("|---|---:|---:|---:|");
    for (name, [direct, meshed]) in rows {
        let (d, m) = (median(direct), median(meshed));
        println!("| {name} | {d:.2} | {m:.2} | {:.2} |", m / d);
    }
}
