//! The control plane: turns the mesh index into xDS for every node proxy and issues workload
//! certificates.
//!
//! Layout: `translate` (mesh index → xDS resources), `ca` (certificate authority), `auth` (who
//! is calling: tokens file, Kubernetes TokenReview), `run` (wiring and serving), `debug` with
//! `registryz` and `config_dump` (the debug endpoint).

pub mod auth;
pub mod ca;
mod config_dump;
pub mod debug;
mod registryz;
pub mod run;
pub mod translate;
