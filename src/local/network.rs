// TEMPORARY STUB (replaced by the local-network branch)
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;
use ipnet::Ipv4Net;
use super::LocalError;
use super::state::{ServiceState, StateDir};
use crate::sys::netns::Netns;
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
pub struct ClusterNetwork { pub name: String, pub netns: Netns, pub pod_cidr: Ipv4Net, pub gateway: Ipv4Addr, pub service_cidr: Ipv4Net }
impl ClusterNetwork {
    pub fn create(_dir: &StateDir, _pod_cidr: Ipv4Net, _service_cidr: Ipv4Net) -> Result<Self, LocalError> { todo!() }
    pub fn sync_services(&self, _rules: &[ServiceRule]) -> Result<(), LocalError> { todo!() }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol { Tcp, Udp }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule { pub cluster_ip: Ipv4Addr, pub port: u16, pub protocol: Protocol, pub endpoints: Vec<SocketAddrV4> }
pub struct VipAllocator;
impl VipAllocator {
    pub fn new(_c: Ipv4Net) -> Self { VipAllocator }
    pub fn reserve(&mut self, _k: &(String, String), _ip: Ipv4Addr) -> bool { todo!() }
    pub fn allocate(&mut self, _k: &(String, String)) -> Option<Ipv4Addr> { todo!() }
    pub fn release(&mut self, _k: &(String, String)) { todo!() }
    pub fn keys(&self) -> impl Iterator<Item = &(String, String)> { std::iter::empty() }
}
pub fn render_hosts(_ns: &str, _pod: &str, _ip: Option<IpAddr>, _s: &[ServiceState], _d: &str) -> String { todo!() }
pub fn write_hosts(_p: &Path, _t: &str) -> Result<(), LocalError> { todo!() }
pub fn add_netns(_n: &str) -> Result<Netns, LocalError> { todo!() }
pub fn delete_netns(_n: &str) -> Result<(), LocalError> { todo!() }
