//! ztunnel: the per-node L4 proxy. It serves each enrolled pod from inside the pod's network
//! namespace: outbound capture (15001), inbound plaintext (15006) and inbound HBONE (15008).

pub mod accesslog;
pub mod admin;
pub mod authz;
pub mod certs;
pub mod metrics;
pub mod state;
