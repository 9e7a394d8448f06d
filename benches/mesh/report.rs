//! The table (medians of the rounds, direct and mesh, their ratio), the first performance bar
//! of issue 7 checked against it, and `docs/benchmarks.md`.

use std::fmt::Write as _;

use crate::controlplane;
use crate::figures::Bench;
use crate::topology::Route;

/// Every figure's values over the rounds, direct and mesh, in the order first recorded.
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, [Vec<f64>; 2])>,
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

impl Table {
    pub fn add(&mut self, figure: &str, route: Route, value: f64) {
        let i = if route == Route::Direct { 0 } else { 1 };
        match self.rows.iter_mut().find(|(name, _)| name == figure) {
            Some((_, values)) => values[i].push(value),
            None => {
                let mut values = [Vec::new(), Vec::new()];
                values[i].push(value);
                self.rows.push((figure.to_string(), values));
            }
        }
    }

    /// The median of a figure on a route.
    pub fn get(&self, figure: &str, route: Route) -> Option<f64> {
        let i = if route == Route::Direct { 0 } else { 1 };
        self.rows.iter().find(|(name, _)| name == figure).and_then(|(_, v)| median(&v[i]))
    }

    /// Every recorded value, for the smoke mode's sanity check.
    pub fn all(&self) -> impl Iterator<Item = (&str, f64)> {
        self.rows.iter().flat_map(|(name, v)| v.iter().flatten().map(move |x| (name.as_str(), *x)))
    }
}

fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 1000.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// One line of the bar: the figure, the measured value, the limit, pass or fail.
struct Check {
    what: String,
    measured: Option<f64>,
    limit: String,
    pass: bool,
}

fn at_least(what: &str, measured: Option<f64>, limit: f64) -> Check {
    Check { what: what.into(), measured, limit: format!("≥ {limit}"), pass: measured.is_some_and(|m| m >= limit) }
}

fn at_most(what: &str, measured: Option<f64>, limit: f64) -> Check {
    Check { what: what.into(), measured, limit: format!("≤ {limit}"), pass: measured.is_some_and(|m| m <= limit) }
}

fn ratio(t: &Table, figure: &str) -> Option<f64> {
    Some(t.get(figure, Route::Mesh)? / t.get(figure, Route::Direct)?)
}

fn added(t: &Table, figure: &str) -> Option<f64> {
    Some(t.get(figure, Route::Mesh)? - t.get(figure, Route::Direct)?)
}

fn max_of(t: &Table, suffix: &str) -> Option<f64> {
    ["ztunnel/node-1", "ztunnel/node-2"]
        .iter()
        .filter_map(|z| t.get(&format!("{z} {suffix}"), Route::Mesh))
        .reduce(f64::max)
}

/// Issue 7, item 3: the first bar, against this run's medians.
fn checks(bench: &Bench) -> Vec<Check> {
    let t = &bench.table;
    let churn = &bench.churn[1];
    let worst_churn = churn.first().map(|first| churn.iter().map(|r| r / first).fold(f64::MAX, f64::min));
    let tool_errors: u64 = bench.errors.values().map(|[d, m]| d + m).sum();
    let ztunnel_problems: u64 = bench.ztunnel_problems.values().sum();
    let mut checks = vec![
        at_least("single-stream throughput, mesh/direct", ratio(t, "throughput, 1 stream (Gbit/s)"), 0.29),
        at_least("64 B transactions/s, mesh/direct", ratio(t, "64 B req/resp (transactions/s)"), 0.33),
        at_most("64 B added p50 latency (µs)", added(t, "64 B req/resp p50 (µs)"), 45.0),
        at_most("64 B added p99 latency (µs)", added(t, "64 B req/resp p99 (µs)"), 85.0),
        at_least("new connections/s, 1 client, mesh/direct", ratio(t, "new connections/s, 1 client"), 0.17),
        at_least("new connections/s, 8 clients, mesh/direct", ratio(t, "new connections/s, 8 clients"), 0.24),
        at_least("sustained churn: worst run / first run (mesh)", worst_churn, 0.90),
        at_most("ztunnel RSS idle (MiB, larger ztunnel)", max_of(t, "RSS idle (MiB)"), 12.0),
        at_most("ztunnel RSS after throughput (MiB, larger)", max_of(t, "RSS after throughput (MiB)"), 25.0),
        at_most(
            "ztunnel RSS per idle connection (KiB)",
            t.get("ztunnel RSS per idle connection, busier (KiB)", Route::Mesh),
            3.0,
        ),
        at_most("ztunnel CPU-s per GB", t.get("ztunnel CPU-s per GB (1 stream)", Route::Mesh), 1.0),
        at_most("ztunnel CPU-µs per 64 B transaction", t.get("ztunnel CPU-µs per 64 B transaction", Route::Mesh), 45.0),
        at_most(
            "ztunnel CPU-µs per new connection",
            t.get("ztunnel CPU-µs per new connection (8 clients)", Route::Mesh),
            300.0,
        ),
    ];
    checks.push(Check {
        what: "no error or reset (load tools; ztunnel warn/error lines, passed-on resets apart)".into(),
        measured: Some((tool_errors + ztunnel_problems) as f64),
        limit: "= 0".into(),
        pass: tool_errors + ztunnel_problems == 0,
    });
    checks
}

/// The report as Markdown: the table, churn, the bar, errors.
pub fn render(bench: &Bench, cp: &controlplane::Report) -> String {
    let rounds = bench.config.rounds;
    let mut out = String::new();
    let _ = writeln!(out, "| figure (median of {rounds}) | direct | mesh | mesh / direct |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, [d, m]) in &bench.table.rows {
        let (d, m) = (median(d), median(m));
        let cell = |v: Option<f64>| v.map_or("".to_string(), number);
        let ratio = match (d, m) {
            (Some(d), Some(m)) if d != 0.0 => format!("{m_d:.2}", m_d = m / d),
            _ => "".to_string(),
        };
        let _ = writeln!(out, "| {name} | {} | {} | {ratio} |", cell(d), cell(m));
    }
    let ms = |d: std::time::Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let sizes = cp.sizes;
    let _ = writeln!(out, "| control plane: change → 1 client (ms) | | {} | |", ms(cp.baseline));
    let _ = writeln!(out, "| control plane: change → last of {} clients (ms) | | {} | |", sizes.clients, ms(cp.fanout));
    let _ =
        writeln!(out, "| control plane RSS with {} clients (MiB) | | {} | |", sizes.clients, cp.rss_loaded_kib / 1024);
    let _ = writeln!(
        out,
        "\nControl plane: {} pods, {} services, {} clients, median of {} changes; the files backend's \
         150 ms debounce is in every change time; ready {} ms after start.",
        sizes.pods,
        sizes.services,
        sizes.clients,
        sizes.rounds,
        ms(cp.ready)
    );

    let _ = writeln!(out, "\nSustained churn (8 clients, consecutive runs without draining TIME_WAIT):\n");
    let _ = writeln!(out, "| run | direct (conn/s) | direct / run 1 | mesh (conn/s) | mesh / run 1 |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    let [direct, mesh] = &bench.churn;
    for run in 0..direct.len().max(mesh.len()) {
        let cell = |v: &Vec<f64>| v.get(run).map_or("".into(), |x| number(*x));
        let rel = |v: &Vec<f64>| v.get(run).map_or("".into(), |x| format!("{:.2}", x / v[0]));
        let _ = writeln!(out, "| {} | {} | {} | {} | {} |", run + 1, cell(direct), rel(direct), cell(mesh), rel(mesh));
    }

    let _ = writeln!(out, "\nThe first bar (issue 7, item 3):\n");
    let _ = writeln!(out, "| bar | measured | limit | |\n|---|---:|---:|---|");
    for c in checks(bench) {
        let measured = c.measured.map_or("missing".into(), number);
        let _ = writeln!(out, "| {} | {measured} | {} | {} |", c.what, c.limit, if c.pass { "PASS" } else { "FAIL" });
    }

    let _ = writeln!(
        out,
        "\nErrors by test (load tools: direct / mesh; ztunnel warn/error log lines; resets from the \
         client or server that ztunnel passed on):\n"
    );
    let mut tests: Vec<&String> = bench.errors.keys().chain(bench.ztunnel_problems.keys()).collect();
    tests.sort();
    tests.dedup();
    for test in tests {
        let [d, m] = bench.errors.get(test).copied().unwrap_or_default();
        let z = bench.ztunnel_problems.get(test).copied().unwrap_or(0);
        let r = bench.passed_on_resets.get(test).copied().unwrap_or(0);
        let _ = writeln!(out, "- {test}: tools {d} / {m}; ztunnel {z}; passed-on resets {r}");
    }
    let _ = writeln!(
        out,
        "\nPassed-on resets are the load tools' own: wrk closes its connections with responses \
         unread and iperf3's server closes data connections with data still coming (a reset, or a \
         broken pipe for the writer), on the direct path too (`nstat` in the direct client pod counts \
         `TcpExtTCPAbortOnClose` during wrk). ztunnel passes each on as RFC 9113 asks and logs the \
         connection at error; they are not counted against the bar."
    );
    for (test, left) in &bench.undrained {
        let _ = writeln!(out, "- {test} started with {left} TIME_WAIT sockets left (drain bound hit)");
    }
    if !bench.problem_examples.is_empty() {
        let _ =
            writeln!(out, "\nThe first ztunnel warn/error lines:\n\n```\n{}\n```", bench.problem_examples.join("\n"));
    }
    out
}

/// This machine, for the record.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".into(), |m| m.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cpus} CPUs ({model}), Linux {}, {:.1} GiB memory", kernel.trim(), mem_kib / 1024.0 / 1024.0)
}

/// What `docs/benchmarks.md` says around the table (the whole file is written by the bench).
const ABOUT: &str = "# Benchmarks

`cargo bench --bench mesh` measures the data plane through the mesh side by side with direct
TCP, and the control plane, and writes this file. Run it as root on a machine prepared with
`bash install.sh --deps-only` (it needs `iperf3`, `wrk`, `ss`, and what `ambient local` needs).

## What it runs

The bench brings up its own mesh with `ambient local` (two nodes, in a temporary state folder,
taken down at the end, also on a panic): the namespace `mesh` (enrolled in the mesh) and the
namespace `direct` (not enrolled), each with a `client` pod on node-1 and a `server` pod on
node-2. Traffic targets the server pod's IP, so the mesh path is client → ztunnel node-1 →
HBONE (mTLS, HTTP/2 CONNECT) → ztunnel node-2 → server, and the direct path is the same two
network namespaces over the same bridge. Each round measures both paths in turn; figures are
medians of the rounds.

- **Throughput**: iperf3, one stream and 8 parallel streams.
- **Request/response**: 64 B and 1 KB messages on one long-lived connection (p50, p99, p99.9,
  transactions/s), by the bench's own load tool (the bench binary run as `__tool rr` in the
  client pod; the servers are the same binary as `__tool serve`, the pods' command).
- **Connection rate**: connect, send 64 B, read the 64 B answer, close (the client closes
  first), with 1 and 8 concurrent clients, each run after TIME_WAIT sockets of earlier runs
  have drained from both pods. **Sustained churn**: five consecutive 8-client runs without
  draining, each run's rate against the first's. The client pods (only) get
  `net.ipv4.tcp_tw_reuse=1`: the client closes first, and with the kernel's default its own
  TIME_WAIT sockets would exhaust its ports after about 14,000 connections on either path.
- **HTTP/1.1 keep-alive**: wrk, 2 threads, 8 connections, against the tool's fixed response.
- **ztunnel resources**: CPU time (utime + stime from `/proc/PID/stat`) of both ztunnels across
  a run, per GB of payload (1-stream iperf3), per 64 B transaction, per new connection (8
  clients) and per HTTP request; RSS (VmRSS) of each ztunnel idle (15 s after `up`: ztunnel
  releases its start-up code pages 10 s after it is ready; its heap and stacks alone, RssAnon,
  are shown too), after the throughput tests, and with idle connections held open through the
  mesh (per connection: the busier ztunnel's growth divided by the connections).
- **Control plane**: the code of `cargo bench --bench controlplane`: a change reaching 100
  connected xDS clients with 10,000 pods and 1,000 services loaded, and the control plane's RSS.

ztunnel writes an access log line per connection to its log file, as users run it; that cost is
in the figures. `ambient local` runs each ztunnel with one data thread. What limits each figure,
and the floor any node proxy has on this machine, are in `docs/performance.md`.

Knobs (environment): `ROUNDS` (3), `SECONDS` per throughput, request/response and wrk run (10),
`CRR_SECONDS` per connection-rate run (5), `CHURN_RUNS` (5), `IDLE_CONNECTIONS` (10000),
`DRAIN_SECONDS` (the longest wait for TIME_WAIT sockets, 90), `PODS`/`SERVICES`/`CLIENTS`/`CP_ROUNDS`
for the control plane (10000/1000/100/5), `WRITE_DOCS=0` to leave this file alone.
Without `--bench` (`cargo test --bench mesh`, which `scripts/test.sh` runs) the bench runs a smoke
version: one round of about a second per figure, 100 idle connections and a small control
plane, checking that every figure is sane and nothing failed.
";

/// Writes `docs/benchmarks.md`.
pub fn write_docs(command: &str, machine: &str, date: &str, report: &str, notes: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let text = format!(
        "{ABOUT}\n## The last run\n\n- command: `{command}`\n- machine: {machine}\n- date: {date}\n{notes}\n{report}"
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprintln!("wrote {}", path.display());
}
