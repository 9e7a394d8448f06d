//! Talking to the person running install: lines of output, progress bars, the confirmation.
//!
//! Output goes to stdout (or, in tests, to a [`Transcript`]); progress bars and the question go
//! to stderr. Bars are hidden when stderr is not a terminal, and every line is printed with the
//! bars suspended so the two never interleave.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::error::ClusterError;

/// How a command that changes the cluster gets its go-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `-y`: proceed without asking.
    Yes,
    /// Ask on the terminal; refuse when standard input is not one.
    Ask,
    /// A fixed answer, as if typed (for tests and callers that asked already).
    Answer(bool),
}

/// Where output goes and how to ask.
pub struct Ui {
    sink: Sink,
    confirm: Confirm,
    progress: MultiProgress,
}

enum Sink {
    Stdout,
    Memory(Arc<Mutex<String>>),
}

/// The output of a [`Ui::capture`], readable while and after the command runs.
#[derive(Debug, Clone, Default)]
pub struct Transcript(Arc<Mutex<String>>);

impl Transcript {
    /// Everything written so far.
    pub fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl Ui {
    /// Output to stdout, progress bars on stderr when it is a terminal.
    pub fn terminal(confirm: Confirm) -> Ui {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Ui { sink: Sink::Stdout, confirm, progress: MultiProgress::with_draw_target(target) }
    }

    /// Output into a [`Transcript`], no progress bars drawn.
    pub fn capture(confirm: Confirm) -> (Ui, Transcript) {
        let transcript = Transcript::default();
        let ui = Ui {
            sink: Sink::Memory(transcript.0.clone()),
            confirm,
            progress: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        };
        (ui, transcript)
    }

    /// Prints one line (or several, if `text` has newlines).
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        match &self.sink {
            Sink::Stdout => self.progress.suspend(|| {
                // A closed stdout (`ambient install | head`) must not abort the install.
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }),
            Sink::Memory(buffer) => {
                let mut buffer = buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                buffer.push_str(text);
                buffer.push('\n');
            }
        }
    }

    /// A progress bar for one workload: `prefix`, then ready/desired.
    pub(crate) fn bar(&self, prefix: String, desired: u64) -> ProgressBar {
        let style = ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} ready {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = self.progress.add(ProgressBar::new(desired).with_style(style).with_prefix(prefix));
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        bar
    }

    /// Asks `question` (`[y/N]`), unless told the answer. `Ok(false)` is a no.
    pub(crate) async fn confirm(&self, question: &str) -> Result<bool, ClusterError> {
        match self.confirm {
            Confirm::Yes => Ok(true),
            Confirm::Answer(answer) => {
                self.line(format!("{question} [y/N] {}", if answer { "y" } else { "n" }));
                Ok(answer)
            }
            Confirm::Ask => {
                if !std::io::stdin().is_terminal() {
                    return Err(ClusterError::NeedsConfirmation);
                }
                self.progress.suspend(|| {
                    eprint!("{question} [y/N] ");
                    let _ = std::io::stderr().flush();
                });
                let answer = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map(|_| line)
                })
                .await
                .map_err(|e| ClusterError::Stdin(std::io::Error::other(e)))?
                .map_err(ClusterError::Stdin)?;
                Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
            }
        }
    }
}
