//! The mesh benchmark (issue 7): the data plane through `ambient local`'s mesh side by side with
//! direct TCP between the same two network namespaces' nodes, ztunnel CPU and memory, and the
//! control plane; one table, the first bar checked, written to `docs/benchmarks.md`.
//!
//! `cargo bench --bench mesh` (as root; knobs in `docs/benchmarks.md`). Without `--bench`
//! (`cargo test --bench mesh`) it runs a quick smoke version that exercises every path and checks
//! the figures are sane. Run as `<bench> __tool ...` it is the load tool the pods run.
//!
//! Layout: `tool` (the load tools), `topology` (the local mesh, exec, TIME_WAIT, /proc),
//! `figures` (the measurements), `report` (table, bar, docs), `controlplane` (shared with
//! `benches/controlplane.rs`).

#[path = "mesh/controlplane.rs"]
mod controlplane;
#[path = "mesh/figures.rs"]
mod figures;
#[path = "mesh/report.rs"]
mod report;
#[path = "mesh/tool.rs"]
mod tool;
#[path = "mesh/topology.rs"]
mod topology;

use std::path::Path;
use std::time::{Duration, Instant};

use figures::{Bench, Config};
use topology::{Local, Route};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The knobs that were set, for the record of the exact command.
const KNOBS: &[&str] = &[
    "ROUNDS",
    "SECONDS",
    "CRR_SECONDS",
    "CHURN_RUNS",
    "IDLE_CONNECTIONS",
    "DRAIN_SECONDS",
    "PODS",
    "SERVICES",
    "CLIENTS",
    "CP_ROUNDS",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__tool") {
        std::process::exit(tool::main(&args[2..]));
    }
    // nextest lists every target's tests with `--list`; a harness-less bench has none.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    topology::preflight();
    let config = if full {
        Config {
            rounds: env_or("ROUNDS", 3).max(1),
            seconds: env_or("SECONDS", 10.0),
            crr_seconds: env_or("CRR_SECONDS", 5.0),
            churn_runs: env_or("CHURN_RUNS", 5).max(1),
            idle_connections: env_or("IDLE_CONNECTIONS", 10_000),
            drain_bound: Duration::from_secs(env_or("DRAIN_SECONDS", 90)),
            drain_threshold: 100,
            idle_settle: Duration::from_secs(15),
        }
    } else {
        // Smoke: every code path once, briefly; the drain is exercised but not waited out.
        Config {
            rounds: 1,
            seconds: 1.0,
            crr_seconds: 1.0,
            churn_runs: 2,
            idle_connections: 100,
            drain_bound: Duration::from_secs(2),
            drain_threshold: 100,
            idle_settle: Duration::ZERO,
        }
    };
    let cp_sizes = if full {
        controlplane::Sizes {
            pods: env_or("PODS", 10_000),
            services: env_or("SERVICES", 1_000),
            clients: env_or("CLIENTS", 100),
            rounds: env_or("CP_ROUNDS", 5),
        }
    } else {
        controlplane::Sizes { pods: 200, services: 20, clients: 5, rounds: 1 }
    };
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let binary = Path::new(env!("CARGO_BIN_EXE_ambient"));

    let mut bench = Bench::new(Local::up(binary), config.clone());
    bench.idle_rss();
    for round in 1..=config.rounds {
        eprintln!("round {round}/{}", config.rounds);
        // The connection-rate runs are spread over the round so that the TIME_WAIT sockets of
        // one have mostly drained by the next of the same path.
        for route in Route::BOTH {
            bench.connection_rate(route, 1);
        }
        for route in Route::BOTH {
            bench.throughput(route);
        }
        for route in Route::BOTH {
            bench.connection_rate(route, 8);
        }
        for route in Route::BOTH {
            bench.request_response(route);
            bench.http(route);
        }
    }
    eprintln!("sustained churn");
    for route in Route::BOTH {
        bench.sustained_churn(route);
    }
    eprintln!("{} idle connections", config.idle_connections);
    bench.idle_connections();
    // Down before the control plane runs: it gets the machine to itself.
    bench.down();

    eprintln!("control plane: {} pods, {} services, {} clients", cp_sizes.pods, cp_sizes.services, cp_sizes.clients);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cp = runtime.block_on(controlplane::run(binary, cp_sizes));
    cp.print();

    let report = report::render(&bench, &cp);
    let machine = report::machine();
    println!("\n{report}\nmachine: {machine}; {:.0} s", started.elapsed().as_secs_f64());
    if full {
        let set: Vec<String> =
            KNOBS.iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} "))).collect();
        let command = format!("{}cargo bench --bench mesh", set.concat());
        let date =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut notes = format!(
            "- load average at start (1, 5, 15 min): {}\n- duration: {:.0} s\n",
            load_at_start.split_whitespace().take(3).collect::<Vec<_>>().join(", "),
            started.elapsed().as_secs_f64()
        );
        if let Ok(note) = std::env::var("BENCH_NOTE") {
            notes += &format!("- note: {note}\n");
        }
        if env_or("WRITE_DOCS", 1) != 0 {
            report::write_docs(&command, &machine, &date, &report, &notes);
        }
    } else {
        smoke_checks(&bench, &cp);
        eprintln!("smoke run passed in {:.0} s", started.elapsed().as_secs_f64());
    }
}

/// The smoke mode's assertions: every figure present and plausible, no failure anywhere.
fn smoke_checks(bench: &Bench, cp: &controlplane::Report) {
    figures::check_reset_classification();
    let mut count = 0;
    for (figure, value) in bench.table.all() {
        // A growth per idle connection may be zero with only 100 of them (memory freed by the
        // earlier tests is reused); everything else is a rate, a latency, a size or a cost.
        let positive = value > 0.0 || figure.contains("per idle connection");
        assert!(value.is_finite() && positive, "figure {figure:?} is {value}");
        count += 1;
    }
    assert!(count >= 40, "only {count} figure values were recorded");
    for (test, [direct, mesh]) in &bench.errors {
        assert_eq!((direct, mesh), (&0, &0), "{test}: the load tools saw errors (direct, mesh)");
    }
    for churn in &bench.churn {
        assert_eq!(churn.len(), bench.config.churn_runs, "churn runs missing");
    }
    cp.assert_sane();
}
