//! PLACEHOLDER of the lead's `cni::iptables` (contract API only) so the plugin compiles before
//! branch `cni` has the real module; replaced wholesale by the merge.

use std::net::Ipv4Addr;

use crate::sys::netns::Netns;

#[derive(Debug, thiserror::Error)]
#[error("iptables placeholder: {0}")]
pub struct IptablesError(String);

#[derive(Clone, Debug)]
pub struct RedirectConfig {
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub hbone_port: u16,
    pub mark: u32,
    pub probe_source: Ipv4Addr,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            outbound_port: 15001,
            inbound_port: 15006,
            hbone_port: 15008,
            mark: 1337,
            probe_source: Ipv4Addr::new(169, 254, 7, 127),
        }
    }
}

pub fn install(_netns: &Netns, _config: &RedirectConfig) -> Result<(), IptablesError> {
    Err(IptablesError("install not merged yet".into()))
}

pub fn remove(_netns: &Netns) -> Result<(), IptablesError> {
    Err(IptablesError("remove not merged yet".into()))
}

pub fn installed(_netns: &Netns) -> Result<bool, IptablesError> {
    Err(IptablesError("installed not merged yet".into()))
}

pub fn check(_netns: &Netns, _config: &RedirectConfig) -> Result<(), IptablesError> {
    Err(IptablesError("check not merged yet".into()))
}
