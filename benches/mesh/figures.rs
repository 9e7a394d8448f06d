//! The measurements: each runs one load on one route and records its figures (and, through
//! the mesh, the ztunnels' CPU time across it) in the [`Table`].

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use crate::report::Table;
use crate::tool::{ECHO_PORT, HTTP_PORT, IPERF_PORT};
use crate::topology::{Local, Route, cpu_ticks};

/// How long and how often to measure (`cargo bench`) or just exercise (smoke mode).
#[derive(Debug, Clone)]
pub struct Config {
    pub rounds: usize,
    /// iperf3, request/response and wrk runs.
    pub seconds: f64,
    /// Connection-rate runs (and each sustained-churn run).
    pub crr_seconds: f64,
    pub churn_runs: usize,
    pub idle_connections: usize,
    /// The longest wait for TIME_WAIT sockets to drain before a connection-rate run.
    pub drain_bound: Duration,
    /// TIME_WAIT sockets that count as drained: the runtime's readiness probe (every 2 s)
    /// leaves a few in the server pod.
    pub drain_threshold: usize,
    /// How long after `up` the idle RSS is read: ztunnel releases its start-up code pages 10 s
    /// after it is ready, and an idle proxy is one that has settled.
    pub idle_settle: Duration,
}

/// Runs the measurements against one local mesh.
pub struct Bench {
    /// The mesh, until [`Bench::down`].
    local: Option<Local>,
    pub config: Config,
    pub table: Table,
    /// Load-tool errors (failed connects, resets, timeouts) per test, direct and mesh.
    pub errors: BTreeMap<String, [u64; 2]>,
    /// ztunnel log lines at level warn or error per test (access log lines of failed
    /// connections among them).
    pub ztunnel_problems: BTreeMap<String, u64>,
    /// Connections that ended with a reset from the client or the server, passed on by ztunnel.
    pub passed_on_resets: BTreeMap<String, u64>,
    /// The first few of those lines, to show what they were.
    pub problem_examples: Vec<String>,
    /// Connections/s of each sustained-churn run, direct and mesh.
    pub churn: [Vec<f64>; 2],
    /// Runs that started before TIME_WAIT sockets had drained: (test, sockets left).
    pub undrained: Vec<(String, usize)>,
    log_offsets: Vec<u64>,
    ticks_per_second: f64,
}

fn index(route: Route) -> usize {
    match route {
        Route::Direct => 0,
        Route::Mesh => 1,
    }
}

fn f(value: &serde_json::Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or_else(|| panic!("no {key} in {value}"))
}

impl Bench {
    pub fn new(local: Local, config: Config) -> Bench {
        let log_offsets = local.ztunnel_logs().iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
        Bench {
            local: Some(local),
            config,
            table: Table::default(),
            errors: BTreeMap::new(),
            ztunnel_problems: BTreeMap::new(),
            passed_on_resets: BTreeMap::new(),
            problem_examples: Vec::new(),
            churn: [Vec::new(), Vec::new()],
            undrained: Vec::new(),
            log_offsets,
            ticks_per_second: crate::topology::clock_ticks(),
        }
    }

    fn local(&self) -> &Local {
        self.local.as_ref().expect("the mesh is up")
    }

    /// Takes the mesh down (`ambient local down`); the results stay.
    pub fn down(&mut self) {
        self.local = None;
    }

    fn rss_mib(&self) -> Vec<(String, f64)> {
        let pids = self.local().ztunnels();
        pids.into_iter().map(|(name, pid)| (name, crate::controlplane::rss_kib(pid) as f64 / 1024.0)).collect()
    }

    fn record_rss(&mut self, what: &str) -> Vec<(String, f64)> {
        let rss = self.rss_mib();
        for (name, mib) in &rss {
            self.table.add(&format!("{name} RSS {what} (MiB)"), Route::Mesh, *mib);
        }
        rss
    }

    /// The ztunnels' RSS before any traffic, and how much of it is their own memory (heap and
    /// stacks) rather than the binary's code pages.
    pub fn idle_rss(&mut self) {
        std::thread::sleep(self.config.idle_settle);
        self.record_rss("idle");
        for (name, pid) in self.local().ztunnels() {
            let anon = crate::controlplane::status_kib(pid, "RssAnon:") as f64 / 1024.0;
            self.table.add(&format!("{name} RSS idle, heap and stacks only (MiB)"), Route::Mesh, anon);
        }
    }

    /// Runs `work` on `route`; through the mesh, also returns the ztunnels' CPU seconds across
    /// it and fails loudly if a ztunnel restarted meanwhile (its figures would be wrong).
    fn measured<T>(&mut self, test: &str, route: Route, work: impl FnOnce(&Local) -> T) -> (T, f64) {
        let pids = self.local().ztunnels();
        let before = cpu_ticks(&pids);
        let result = work(self.local());
        let cpu = (cpu_ticks(&pids) - before) as f64 / self.ticks_per_second;
        self.local.as_mut().expect("the mesh is up").reload();
        assert_eq!(
            self.local().ztunnels(),
            pids,
            "a ztunnel restarted during {test} (see its log in the state folder)"
        );
        if route == Route::Mesh {
            let (problems, resets) = self.new_ztunnel_problems();
            *self.ztunnel_problems.entry(test.to_string()).or_default() += problems;
            *self.passed_on_resets.entry(test.to_string()).or_default() += resets;
        }
        (result, cpu)
    }

    /// ztunnel log lines at warn or error since the last call: (problems, passed-on resets). A
    /// connection that ended because one of its own ends reset it (the load tools do, at the end
    /// of a run) is logged at error with the reset it passed on; that is not a fault of the mesh,
    /// and is counted apart.
    fn new_ztunnel_problems(&mut self) -> (u64, u64) {
        let (mut problems, mut resets) = (0, 0);
        for (i, path) in self.local().ztunnel_logs().iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else { continue };
            let mut text = String::new();
            let _ = file.seek(SeekFrom::Start(self.log_offsets[i]));
            let read = file.read_to_string(&mut text).unwrap_or(0);
            self.log_offsets[i] += read as u64;
            for line in text.lines().filter(|l| matches!(l.split_whitespace().nth(1), Some("warn" | "error"))) {
                if passed_on_reset(line) {
                    resets += 1;
                    continue;
                }
                problems += 1;
                if self.problem_examples.len() < 5 {
                    self.problem_examples.push(line.to_string());
                }
            }
        }
        (problems, resets)
    }

    fn count_errors(&mut self, test: &str, route: Route, errors: u64) {
        self.errors.entry(test.to_string()).or_default()[index(route)] += errors;
    }

    /// iperf3 for `seconds`, `streams` parallel streams: (Gbit/s, payload bytes).
    fn iperf(&mut self, route: Route, streams: usize) -> ((f64, f64), f64) {
        let target = self.local().server_ip(route).to_string();
        let seconds = format!("{}", self.config.seconds.ceil().max(1.0));
        let test = format!("iperf3, {streams} stream(s)");
        self.measured(&test, route, |local| {
            let args =
                ["iperf3", "-c", &target, "-p", &IPERF_PORT.to_string(), "-t", &seconds, "-P", &streams.to_string()];
            let mut last = String::new();
            // The server runs one test at a time and may still be closing the previous one.
            for _ in 0..3 {
                let output =
                    local.exec(route, "client", &[&args[..], &["-J", "--connect-timeout", "5000"]].concat()).output();
                let output = output.expect("running iperf3");
                let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
                let received = &report["end"]["sum_received"];
                if output.status.success() && received["bits_per_second"].is_number() {
                    return (f(received, "bits_per_second") / 1e9, f(received, "bytes"));
                }
                last = format!("{} {}", report["error"], String::from_utf8_lossy(&output.stderr));
                std::thread::sleep(Duration::from_secs(1));
            }
            panic!("iperf3 through {} failed three times: {last}", route.namespace());
        })
    }

    pub fn throughput(&mut self, route: Route) {
        let ((gbits, bytes), cpu) = self.iperf(route, 1);
        self.table.add("throughput, 1 stream (Gbit/s)", route, gbits);
        if route == Route::Mesh {
            self.table.add("ztunnel CPU-s per GB (1 stream)", route, cpu / (bytes / 1e9));
        }
        let ((gbits, _), _) = self.iperf(route, 8);
        self.table.add("throughput, 8 streams (Gbit/s)", route, gbits);
        if route == Route::Mesh {
            self.record_rss("after throughput");
        }
    }

    /// Request/response of 64 B and 1 KB on one connection.
    pub fn request_response(&mut self, route: Route) {
        let target = format!("{}:{ECHO_PORT}", self.local().server_ip(route));
        for (size, name) in [(64, "64 B"), (1024, "1 KB")] {
            let seconds = self.config.seconds.to_string();
            let test = format!("{name} request/response");
            let (result, cpu) =
                self.measured(&test, route, |l| l.tool(route, &["rr", &target, &size.to_string(), &seconds]));
            self.table.add(&format!("{name} req/resp (transactions/s)"), route, f(&result, "rate"));
            for (key, p) in [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")] {
                self.table.add(&format!("{name} req/resp {p} (µs)"), route, f(&result, key));
            }
            if route == Route::Mesh && size == 64 {
                self.table.add("ztunnel CPU-µs per 64 B transaction", route, cpu * 1e6 / f(&result, "transactions"));
            }
        }
    }

    /// HTTP/1.1 keep-alive requests with wrk (2 threads, 8 connections).
    pub fn http(&mut self, route: Route) {
        let url = format!("http://{}:{HTTP_PORT}/", self.local().server_ip(route));
        let seconds = format!("{}s", self.config.seconds.ceil().max(1.0));
        let command = ["wrk", "-t", "2", "-c", "8", "-d", &seconds, "--latency", "--timeout", "5s", &url];
        let (out, cpu) = self.measured("HTTP/1.1 (wrk)", route, |l| l.run_in_client(route, &command));
        let wrk = parse_wrk(&out);
        self.count_errors("HTTP/1.1 (wrk)", route, wrk.errors);
        self.table.add("HTTP/1.1 keep-alive (requests/s)", route, wrk.rate);
        self.table.add("HTTP/1.1 p50 (µs)", route, wrk.p50_us);
        self.table.add("HTTP/1.1 p99 (µs)", route, wrk.p99_us);
        if route == Route::Mesh {
            self.table.add("ztunnel CPU-µs per HTTP request", route, cpu * 1e6 / (wrk.rate * wrk.seconds));
        }
    }

    /// Waits for TIME_WAIT sockets of earlier runs to drain (bounded), noting when they did not.
    fn drain(&mut self, test: &str, route: Route) {
        let left = self.local().drain(route, self.config.drain_threshold, self.config.drain_bound);
        if left > self.config.drain_threshold {
            self.undrained.push((format!("{test}, {}", route.namespace()), left));
        }
    }

    /// One connection-rate run: the tool's report and the ztunnels' CPU seconds.
    fn crr_run(&mut self, test: &str, route: Route, clients: usize) -> (serde_json::Value, f64) {
        let target = format!("{}:{ECHO_PORT}", self.local().server_ip(route));
        let seconds = self.config.crr_seconds.to_string();
        let (result, cpu) =
            self.measured(test, route, |l| l.tool(route, &["crr", &target, &clients.to_string(), &seconds]));
        let errors = result["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            eprintln!("  {test} via {}: {errors} errors, first: {}", route.namespace(), result["first_error"]);
        }
        self.count_errors(test, route, errors);
        (result, cpu)
    }

    /// New connections/s with `clients` concurrent clients, after TIME_WAIT drained.
    pub fn connection_rate(&mut self, route: Route, clients: usize) {
        let test = format!("new connections, {clients} client(s)");
        self.drain(&test, route);
        let (result, cpu) = self.crr_run(&test, route, clients);
        let plural = if clients == 1 { "client" } else { "clients" };
        self.table.add(&format!("new connections/s, {clients} {plural}"), route, f(&result, "rate"));
        self.table.add(&format!("new connection, {clients} {plural}, p50 (µs)"), route, f(&result, "p50_us"));
        self.table.add(&format!("new connection, {clients} {plural}, p99 (µs)"), route, f(&result, "p99_us"));
        if route == Route::Mesh && clients == 8 {
            self.table.add(
                "ztunnel CPU-µs per new connection (8 clients)",
                route,
                cpu * 1e6 / f(&result, "connections"),
            );
        }
    }

    /// Consecutive 8-client connection-rate runs without draining in between.
    pub fn sustained_churn(&mut self, route: Route) {
        let test = "sustained churn, 8 clients".to_string();
        self.drain(&test, route);
        for run in 0..self.config.churn_runs {
            let (result, _) = self.crr_run(&test, route, 8);
            eprintln!("  churn run {} via {}: {:.0} connections/s", run + 1, route.namespace(), f(&result, "rate"));
            self.churn[index(route)].push(f(&result, "rate"));
        }
    }

    /// ztunnel RSS with `idle_connections` open idle connections through the mesh.
    pub fn idle_connections(&mut self) {
        let count = self.config.idle_connections;
        let before = self.rss_mib();
        let test = format!("{count} idle connections");
        let ((held, with), _) = self.measured(&test, Route::Mesh, |local| {
            let held = local.hold(Route::Mesh, count);
            // Let the ztunnels finish their per-connection work (logs, metrics) first.
            std::thread::sleep(Duration::from_secs(1));
            let with: Vec<f64> =
                local.ztunnels().iter().map(|(_, pid)| crate::controlplane::rss_kib(*pid) as f64 / 1024.0).collect();
            (held, with)
        });
        let errors = held.report["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            eprintln!("  {test}: {errors} errors, first: {}", held.report["first_error"]);
        }
        self.count_errors(&test, Route::Mesh, errors);
        let open = held.report["open"].as_u64().unwrap_or(0) as f64;
        drop(held);
        for ((name, _), w) in before.iter().zip(&with) {
            self.table.add(&format!("{name} RSS with {count} idle connections (MiB)"), Route::Mesh, *w);
        }
        let busier = before.iter().zip(&with).map(|((_, b), w)| w - b).fold(f64::MIN, f64::max);
        self.table.add("ztunnel RSS per idle connection, busier (KiB)", Route::Mesh, busier * 1024.0 / open.max(1.0));
    }
}

/// What wrk printed.
struct Wrk {
    rate: f64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

fn parse_wrk(out: &str) -> Wrk {
    let duration_us = |text: &str| -> f64 {
        let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().unwrap_or_else(|_| panic!("wrk latency {text:?}"));
        number
            * match unit {
                "us" => 1.0,
                "ms" => 1e3,
                "s" => 1e6,
                "m" => 6e7,
                _ => panic!("wrk latency unit {unit:?}"),
            }
    };
    let mut wrk = Wrk { rate: 0.0, seconds: 0.0, p50_us: 0.0, p99_us: 0.0, errors: 0 };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => wrk.rate = rate.parse().unwrap_or(0.0),
            ["50%", latency] => wrk.p50_us = duration_us(latency),
            ["99%", latency] => wrk.p99_us = duration_us(latency),
            // "12345 requests in 10.00s, 1.2MB read"
            [_, "requests", "in", seconds, ..] => {
                wrk.seconds = duration_us(seconds.trim_end_matches(',')) / 1e6;
            }
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            ["Socket", "errors:", rest @ ..] => {
                wrk.errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => wrk.errors += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    assert!(wrk.rate > 0.0 && wrk.seconds > 0.0, "wrk printed no results:\n{out}");
    wrk
}

/// Whether a ztunnel log line is the access-log entry of a connection that one of its ends reset
/// or closed under it: the client or the server reset its socket (`Connection reset by peer`) or
/// closed it while data was still coming (`Broken pipe`), or the ztunnel at the other end passed
/// such a reset on (RST_STREAM CONNECT_ERROR).
fn passed_on_reset(line: &str) -> bool {
    line.contains("connection complete")
        && [
            "error=\"Connection reset by peer",
            "error=\"Broken pipe",
            "error=\"HBONE stream reset by the peer: connection established in response to a CONNECT request",
            "error=\"stream error received: connection established in response to a CONNECT request",
        ]
        .iter()
        .any(|cause| line.contains(cause))
}

/// Checks the reset classification on known lines (run by the smoke mode: a harness-less bench
/// has no `#[test]`s).
pub fn check_reset_classification() {
    let app = r#"2026-11-26T18:37:57Z error access connection complete direction=inbound error="Connection reset by peer (os error 104)""#;
    let peer = r#"2026-11-26T18:37:57Z error access connection complete error="HBONE stream reset by the peer: connection established in response to a CONNECT request was reset or abnormally closed""#;
    let h2 = r#"2026-11-26T18:37:57Z error access connection complete error="stream error received: connection established in response to a CONNECT request was reset or abnormally closed""#;
    let denied =
        r#"2026-11-26T18:37:57Z error access connection complete error="denied by authorization policy mesh/deny""#;
    let pipe =
        r#"2026-11-26T18:50:48Z error access connection complete direction=inbound error="Broken pipe (os error 32)""#;
    let warn = "2026-11-26T18:37:57Z warn ambient::ztunnel::inpod: accept failed";
    assert!(passed_on_reset(app) && passed_on_reset(peer) && passed_on_reset(h2) && passed_on_reset(pipe));
    assert!(!passed_on_reset(denied) && !passed_on_reset(warn));
}
