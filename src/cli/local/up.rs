//! `ambient local up`: checks the machine, starts the runtime in the background (its own
//! session, so it outlives the terminal), shows its progress, and returns once the mesh is
//! ready — or prints why it is not, after the runtime has removed what it created. Also the
//! runtime's own entrypoint (`ambient local runtime`, which `up` runs).

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::LocalUpArgs;
use crate::local::runtime::{self, LocalConfig, Progress};
use crate::local::state::StateDir;
use crate::local::{preflight, teardown};

/// How long pods get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub fn up(args: LocalUpArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = preflight::check() {
        eprintln!("ambient local up: this machine is not ready:\n{e}");
        return Ok(ExitCode::FAILURE);
    }
    let dir = StateDir::new(&args.state.state_dir).context("--state-dir")?;
    if let Some(state) = dir.load()?
        && state.runtime.is_some_and(|r| r.is_alive())
    {
        bail!(
            "a local mesh is already running from {} (runtime pid {}); stop it first with `ambient local down --state-dir {}`",
            dir.root().display(),
            state.runtime.map(|r| r.pid).unwrap_or_default(),
            dir.root().display()
        );
    }
    for path in &args.paths {
        if path.as_os_str() == "-" {
            bail!("-f -: the local mesh watches its files for changes, so it needs files or folders, not stdin");
        }
        if !path.exists() {
            bail!("{} does not exist", path.display());
        }
    }
    // A mesh that was not shut down cleanly (a crash, a killed runtime): remove its remains.
    if dir.state_file().exists() || dir.root().exists() {
        teardown::teardown(&dir).context("removing the remains of an earlier local mesh")?;
    }
    std::fs::create_dir_all(dir.logs_dir()).with_context(|| format!("creating {}", dir.logs_dir().display()))?;

    let binary = std::env::current_exe().context("locating the ambient binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.runtime_log())
        .with_context(|| format!("opening {}", dir.runtime_log().display()))?;
    let mut command = std::process::Command::new(&binary);
    command.args(["local", "runtime", "--nodes", &args.nodes.to_string(), "--state-dir"]).arg(dir.root());
    for path in &args.paths {
        command.arg("-f").arg(std::path::absolute(path).unwrap_or_else(|_| path.clone()));
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    crate::sys::process::new_session(&mut command);

    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    tokio.block_on(async {
        let mut child = tokio::process::Command::from(command).spawn().context("starting the local runtime")?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(100));
        let mut warnings = 0;
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line.context("reading the runtime's progress")?,
                _ = tokio::signal::ctrl_c() => {
                    bar.finish_and_clear();
                    eprintln!("interrupted: stopping the local mesh");
                    let _ = teardown::teardown(&dir);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let Some(line) = line else {
                bar.finish_and_clear();
                let _ = child.wait().await;
                eprintln!(
                    "ambient local up: the runtime stopped unexpectedly; the end of its log ({}):\n{}",
                    dir.runtime_log().display(),
                    crate::local::components::tail(&dir.runtime_log(), 20)
                );
                let _ = teardown::teardown(&dir);
                return Ok(ExitCode::FAILURE);
            };
            match serde_json::from_str::<Progress>(&line) {
                Ok(Progress::Step(message)) => bar.set_message(message),
                Ok(Progress::Warning(message)) => {
                    warnings += 1;
                    bar.suspend(|| eprintln!("warning: {message}"));
                }
                Ok(Progress::Ready { pods, nodes }) => {
                    bar.finish_and_clear();
                    let note = if warnings > 0 {
                        format!(" ({warnings} problems in the input, skipped)")
                    } else {
                        String::new()
                    };
                    println!("local mesh ready: {pods} pods on {nodes} nodes{note}");
                    println!("  state: {}", dir.root().display());
                    println!(
                        "  next:  ambient local status | ambient local exec POD -n NS -- CMD | ambient local down"
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(Progress::Failed(message)) => {
                    bar.finish_and_clear();
                    eprintln!("ambient local up failed: {message}");
                    // The runtime removes what it created; then the rest (state dir) goes.
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    let _ = teardown::teardown(&dir);
                    return Ok(ExitCode::FAILURE);
                }
                Err(_) => bar.suspend(|| eprintln!("{line}")),
            }
        }
    })
}

/// The runtime: runs until SIGTERM/SIGINT, reporting progress as JSON lines on stdout.
pub fn runtime(args: LocalUpArgs) -> anyhow::Result<ExitCode> {
    preflight::check()?;
    let dir = StateDir::new(&args.state.state_dir).context("--state-dir")?;
    let config = LocalConfig {
        dir,
        paths: args.paths,
        nodes: args.nodes,
        binary: std::env::current_exe().context("locating the ambient binary")?,
        ready_timeout: READY_TIMEOUT,
    };
    let progress: runtime::ProgressSink = Arc::new(|event: Progress| {
        // `up` may be gone (it returns once ready): a closed pipe is fine.
        let mut line = serde_json::to_string(&event).expect("progress serializes");
        line.push('\n');
        let _ = std::io::stdout().write_all(line.as_bytes());
        let _ = std::io::stdout().flush();
    });
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = tokio.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        runtime::run(config, progress, shutdown).await.map_err(anyhow::Error::from)
    });
    result.map(|()| ExitCode::SUCCESS)
}
