//! The `ambient` binary: parse the command line and dispatch. Everything else is in the library.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

/// The file name a container runtime execs the CNI plugin by (the conflist's `type`).
const CNI_PLUGIN_NAME: &str = "ambient-cni";

fn main() -> ExitCode {
    // Exec'd as a CNI plugin: the runtime passes CNI_* variables, never arguments to parse.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&argv0).file_name().is_some_and(|name| name == CNI_PLUGIN_NAME) {
        return ambient::cni::plugin::main();
    }
    // One TLS provider for the whole process (kube, tonic and our own configs), chosen before
    // anything can pick one implicitly.
    ambient::tls::install_default_provider();
    let cli = ambient::cli::Cli::parse();
    match ambient::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: what failed and why.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
