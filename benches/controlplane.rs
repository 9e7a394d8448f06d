//! Control plane push benchmark: how long a config change takes to reach every connected
//! client, with a large mesh loaded, and the control plane's memory at that size. The code is
//! `benches/mesh/controlplane.rs`, shared with `cargo bench --bench mesh`, whose table quotes it.
//!
//! `cargo bench --bench controlplane` (env: PODS, SERVICES, CLIENTS, ROUNDS).
//! Without `--bench` (`cargo test --bench controlplane`) it runs a small smoke version and checks that the
//! figures are sane, so the benchmark cannot rot.

#[path = "mesh/controlplane.rs"]
mod core;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // nextest lists every target's tests with `--list`; a harness-less bench has none.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_ambient"));
    if args.iter().any(|a| a == "--bench") {
        let sizes = core::Sizes {
            pods: env_or("PODS", 10_000),
            services: env_or("SERVICES", 1_000),
            clients: env_or("CLIENTS", 100),
            rounds: env_or("ROUNDS", 5),
        };
        core::run(binary, sizes).await.print();
    } else {
        let sizes = core::Sizes { pods: 200, services: 20, clients: 5, rounds: 1 };
        let report = core::run(binary, sizes).await;
        report.print();
        report.assert_sane();
    }
}
