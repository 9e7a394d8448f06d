//! ztunnel: the per-node L4 proxy. It serves each enrolled pod from inside the pod's network
//! namespace: outbound capture (15001), inbound plaintext (15006) and inbound HBONE (15008).
//!
//! `run` starts it (two runtimes: control and data); `inpod` receives pods from the CNI agent
//! and opens their listeners; `outbound` and `inbound` serve connections; `state` holds what
//! xDS says, `authz` decides, `certs` holds workload certificates; `metrics`, `accesslog` and
//! `admin` report.

pub mod accesslog;
pub mod admin;
pub mod authz;
pub mod certs;
pub mod config;
pub mod inbound;
pub mod inpod;
pub mod metrics;
pub mod outbound;
pub mod proxy;
pub mod run;
pub mod state;
pub mod telemetry;
