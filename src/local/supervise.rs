//! Supervised child processes: the components and the pods' containers. Each runs with its
//! output appended to a log file, is restarted by its policy with backoff, and is stopped with
//! SIGTERM, then SIGKILL after a grace period.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::sys::process::ProcessRecord;

/// Kubernetes' restart policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    /// `spec.restartPolicy` (default Always); unknown values are refused by the caller.
    pub fn from_policy(policy: Option<&str>) -> Option<Restart> {
        match policy.unwrap_or("Always") {
            "Always" => Some(Restart::Always),
            "OnFailure" => Some(Restart::OnFailure),
            "Never" => Some(Restart::Never),
            _ => None,
        }
    }

    fn restarts_after(self, success: bool) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => !success,
            Restart::Never => false,
        }
    }
}

/// What happened to a supervised process.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    Started(ProcessRecord),
    /// It exited (`code`, or killed by a signal: 128 + signal number) and `restarting` says
    /// whether it will be started again.
    Exited {
        code: i32,
        restarting: bool,
    },
    /// It could not be started at all (missing program, bad log path).
    SpawnFailed {
        error: String,
        restarting: bool,
    },
    /// Stopped on request.
    Stopped,
}

/// Builds the command for each (re)start.
pub type MakeCommand = Arc<dyn Fn() -> std::io::Result<std::process::Command> + Send + Sync>;

/// One process to supervise.
pub struct ProcessSpec {
    pub name: String,
    pub make: MakeCommand,
    pub log: PathBuf,
    pub restart: Restart,
    /// How long SIGTERM has before SIGKILL.
    pub grace: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long is considered healthy again: its next crash restarts fast.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Runs `spec` until `stop` turns true (or it ends for good under its policy), reporting every
/// change to `on_event`. Must be called from a runtime worker thread: children get SIGTERM when
/// the thread that started them exits, and workers live as long as the runtime.
pub async fn supervise(
    spec: ProcessSpec,
    mut stop: watch::Receiver<bool>,
    on_event: impl Fn(ProcessEvent) + Send + Sync + 'static,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            on_event(ProcessEvent::Stopped);
            return;
        }
        let started = Instant::now();
        let outcome = match spawn(&spec) {
            Err(error) => {
                let restarting = spec.restart != Restart::Never;
                tracing::warn!(process = %spec.name, %error, "cannot start");
                on_event(ProcessEvent::SpawnFailed { error, restarting });
                if !restarting {
                    return;
                }
                None
            }
            Ok(mut child) => {
                let record = child.id().and_then(|pid| ProcessRecord::of(pid).ok());
                if let Some(record) = record {
                    on_event(ProcessEvent::Started(record));
                }
                tokio::select! {
                    status = child.wait() => {
                        let code = match status {
                            Ok(status) => exit_code(status),
                            Err(_) => 255,
                        };
                        Some(code)
                    }
                    () = stopped(&mut stop) => {
                        terminate(&mut child, record, spec.grace).await;
                        on_event(ProcessEvent::Stopped);
                        return;
                    }
                }
            }
        };
        if let Some(code) = outcome {
            let restarting = spec.restart.restarts_after(code == 0);
            tracing::info!(process = %spec.name, code, restarting, "exited");
            on_event(ProcessEvent::Exited { code, restarting });
            if !restarting {
                return;
            }
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => {
                on_event(ProcessEvent::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn spawn(spec: &ProcessSpec) -> Result<tokio::process::Child, String> {
    let log = open_log(&spec.log).map_err(|e| format!("opening log {}: {e}", spec.log.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("opening log {}: {e}", spec.log.display()))?;
    let mut command = (spec.make)().map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stdout(log).stderr(log_err);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    command.spawn().map_err(|e| format!("starting {program}: {e}"))
}

fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Kubernetes' convention: the exit code, or 128 + the signal that killed the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

async fn terminate(child: &mut tokio::process::Child, record: Option<ProcessRecord>, grace: Duration) {
    if let Some(record) = record {
        record.signal(Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Resolves once `stop` turns true (or its sender is gone). Unlike `wait_for`, it holds no
/// borrow of the value, so it can sit in a `select!` of a task that moves between threads.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
