//! The control plane: turns the mesh index into xDS for every node proxy and issues workload
//! certificates.

pub mod translate;
