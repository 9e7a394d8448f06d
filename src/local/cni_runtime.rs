// TEMPORARY STUB (replaced by the local-network branch)
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use ipnet::Ipv4Net;
use super::LocalError;
use super::state::StateDir;
use crate::sys::netns::Netns;
pub struct CniRuntime;
pub struct CniPod { pub namespace: String, pub name: String, pub uid: String, pub container_id: String, pub netns: String }
pub struct CniResult { pub ip: IpAddr, pub result: serde_json::Value }
impl CniRuntime {
    pub fn new(_d: &StateDir, _n: &str, _c: Netns, _p: Ipv4Net, _g: Ipv4Addr, _b: &Path) -> Result<Self, LocalError> { todo!() }
    pub async fn add(&self, _p: &CniPod) -> Result<CniResult, LocalError> { todo!() }
    pub async fn del(&self, _p: &CniPod) -> Result<(), LocalError> { todo!() }
}
