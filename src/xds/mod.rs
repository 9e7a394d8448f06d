//! xDS: the protocol types shared by the control plane and the node proxies, the delta ADS
//! server the control plane runs and the client ztunnel runs.

pub mod auth;
pub mod client;
pub mod proto;
pub mod resource;
pub mod server;

pub use self::resource::{Resource, ResourceUpdate};
