//! End to end on `ambient local`: each test brings a real mesh up from Kubernetes YAML with the
//! `ambient` binary (control plane, a ztunnel and a CNI agent per node, pods as network
//! namespaces wired by the real CNI plugins) and drives it only through `ambient local`
//! commands, as a user would. Needs root, iproute2, iptables, containernetworking-plugins,
//! python3 and curl; fails loudly without them.
//!
//! Every mesh has its own temporary state folder, so tests run in parallel without colliding —
//! which is itself under test. All traffic stays inside the meshes' own namespaces.

#[path = "local/driver.rs"]
mod driver;

#[path = "local/cli.rs"]
mod cli;
#[path = "local/demo.rs"]
mod demo;
#[path = "local/lifecycle.rs"]
mod lifecycle;
#[path = "local/policy.rs"]
mod policy;
