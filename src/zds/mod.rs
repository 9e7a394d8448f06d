//! ZDS: the node agent <-> ztunnel protocol (pods and their network namespaces), both ends.
//!
//! ztunnel ([`client`]) connects to the agent's SOCK_SEQPACKET socket and sends a hello; the agent
//! ([`server`]) then sends one request per datagram (add with the pod's netns descriptor, keep,
//! del, snapshot-sent) and ztunnel acks each one, with an error text when it failed.

pub mod client;
pub mod server;

#[cfg(test)]
mod tests;

pub use crate::xds::proto::zds as proto;
pub use client::{PodHandler, ZdsClientConfig, ZdsStatus, run_client};
pub use server::{ZdsConnection, ZdsError, ZdsListener};

/// Who a pod is, as the agent tells ztunnel before xDS may know it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodInfo {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub service_account: String,
}
