//! CNI: the node agent (`ambient cni`) and the chained CNI plugin (`ambient cni plugin`, or the
//! binary invoked as `ambient-cni`) that put pods into the mesh. Redirection is installed inside
//! each enrolled pod's network namespace (in-pod mode), so it works with any primary CNI.
//!
//! `protocol`: plugin <-> agent messages; `iptables`: the in-pod redirection rules;
//! `plugin`: the CNI spec side; `agent`: pods of the node, ZDS to ztunnel, plugin requests.

pub mod agent;
pub mod iptables;
pub mod plugin;
pub mod protocol;
