//! The control plane: turns the mesh index into xDS for every node proxy and issues workload
//! certificates.

pub mod translate;
pub mod debug;
mod registryz;
mod config_dump;
pub mod run;
