//! `ambient manifest generate` and `ambient profile list|dump`: the install's YAML and values,
//! printed without touching a cluster.

use std::process::ExitCode;

use anyhow::Context;

use super::install::{ManifestCommand, ProfileCommand, ValuesArgs};
use crate::install::render;
use crate::install::values::{self, Request};

impl ValuesArgs {
    /// What to render: the profile, the values files, the `--set` overrides.
    pub fn request(&self) -> Request {
        Request { profile: self.profile.clone(), files: self.values_files.clone(), sets: self.set.clone() }
    }
}

pub fn run_manifest(command: ManifestCommand) -> anyhow::Result<ExitCode> {
    match command {
        ManifestCommand::Generate(args) => {
            let manifest = render::build(&args.request())?;
            print!("{}", render::to_yaml(&manifest));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_profile(command: ProfileCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProfileCommand::List => {
            let names = values::profile_names();
            let width = names.iter().map(String::len).max().unwrap_or(0);
            for name in names {
                let description = values::profile_description(&name).unwrap_or_default();
                println!("{name:<width$}  {description}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Dump { name } => {
            print!("{}", values::dump(&name).with_context(|| format!("profile {name}"))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
