//! `ambient local up` (start the runtime in the background, show its progress) and the runtime
//! entrypoint itself.

use std::process::ExitCode;

use super::LocalUpArgs;

pub fn up(_args: LocalUpArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local up")
}

pub fn runtime(_args: LocalUpArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local runtime")
}
