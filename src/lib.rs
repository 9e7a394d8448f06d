//! ambient: a sidecar-less service mesh, Istio-compatible, in one binary.
//!
//! Layers, top to bottom (see docs/architecture.md): `cli` -> components -> `mesh` ->
//! `config` / `model`. A module only uses the layers below it.

pub mod cli;
pub mod cni;
pub mod config;
pub mod controlplane;
pub mod hbone;
pub mod install;
pub mod local;
pub mod mesh;
pub mod model;
pub mod sys;
pub mod tls;
pub mod xds;
pub mod zds;
pub mod ztunnel;
