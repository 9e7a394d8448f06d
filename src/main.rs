//! The `ambient` binary: parse the command line and dispatch. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
