//! `ambient completions`: shell completion scripts, generated from the CLI definition.
//!
//! The generated files are checked in under `completions/` (install.sh installs them); a test
//! fails when they no longer match the CLI.

use std::process::ExitCode;

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    pub const ALL: [CompletionShell; 3] = [CompletionShell::Bash, CompletionShell::Zsh, CompletionShell::Fish];

    /// The checked-in file under `completions/` for this shell.
    pub fn file_name(self) -> &'static str {
        match self {
            CompletionShell::Bash => "ambient.bash",
            CompletionShell::Zsh => "_ambient",
            CompletionShell::Fish => "ambient.fish",
        }
    }

    fn shell(self) -> Shell {
        match self {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient completions bash > /etc/bash_completion.d/ambient\n  ambient completions zsh > \"${fpath[1]}/_ambient\"\n  ambient completions fish > ~/.config/fish/completions/ambient.fish"
)]
pub struct CompletionsArgs {
    /// Shell to generate completions for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The completion script for `shell`.
pub fn generate(shell: CompletionShell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell.shell(), &mut super::Cli::command(), "ambient", &mut out);
    out
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    std::io::stdout().write_all(&generate(args.shell))?;
    Ok(ExitCode::SUCCESS)
}
