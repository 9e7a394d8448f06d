//! `ambient local status|exec|logs|metrics|down`: everything that acts on a local mesh from its
//! state file.

use std::process::ExitCode;

use super::{LocalExecArgs, LocalLogsArgs, LocalMetricsArgs, StateDirArgs};

pub fn status(_args: StateDirArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local status")
}
pub fn exec(_args: LocalExecArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local exec")
}
pub fn logs(_args: LocalLogsArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local logs")
}
pub fn metrics(_args: LocalMetricsArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local metrics")
}
pub fn down(_args: StateDirArgs) -> anyhow::Result<ExitCode> {
    crate::cli::not_implemented("local down")
}
