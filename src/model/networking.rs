//! `networking.istio.io` resources the mesh consumes: ServiceEntry and WorkloadEntry.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::security::WorkloadSelector;
use super::validate::{Validate, Validator, parse_ip_block};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryLocation {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryResolution {
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `networking.istio.io/v1` ServiceEntry.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "networking.istio.io", version = "v1", kind = "ServiceEntry", namespaced)]
#[kube(derive = "PartialEq", derive = "Default")]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub location: ServiceEntryLocation,
    #[serde(default)]
    pub resolution: ServiceEntryResolution,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<EntryWorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// ServiceEntry's `workloadSelector` uses `labels`, not `matchLabels`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct EntryWorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl From<&EntryWorkloadSelector> for WorkloadSelector {
    fn from(s: &EntryWorkloadSelector) -> Self {
        WorkloadSelector { match_labels: s.labels.clone() }
    }
}

/// `networking.istio.io/v1` WorkloadEntry; its spec is also a ServiceEntry endpoint.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "networking.istio.io", version = "v1", kind = "WorkloadEntry", namespaced)]
#[kube(derive = "PartialEq", derive = "Default")]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntrySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl Validate for ServiceEntrySpec {
    fn validate(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at("hosts", "at least one host is required");
        }
        v.each("hosts", &self.hosts, |v, h| {
            if h.is_empty() {
                v.error("host must not be empty");
            }
        });
        v.ip_blocks("addresses", &self.addresses);
        v.each("ports", &self.ports, |v, p| {
            v.port("number", p.number.into());
            if let Some(t) = p.target_port {
                v.port("targetPort", t.into());
            }
            if p.name.is_empty() {
                v.error_at("name", "port name is required");
            }
        });
        if self.workload_selector.is_some() && !self.endpoints.is_empty() {
            v.error("only one of endpoints and workloadSelector may be set");
        }
        if self.resolution == ServiceEntryResolution::Static
            && self.endpoints.is_empty()
            && self.workload_selector.is_none()
        {
            v.error_at("endpoints", "resolution STATIC requires endpoints or a workloadSelector");
        }
        v.each("endpoints", &self.endpoints, |v, e| e.validate(v));
    }
}

impl Validate for WorkloadEntrySpec {
    fn validate(&self, v: &mut Validator) {
        v.at("ports", |v| {
            for (name, port) in &self.ports {
                v.port(name, (*port).into());
            }
        });
        if let Some(addr) = &self.address {
            // An address may be an IP, a DNS name, or unix:///path; only a value that looks like an
            // IP (digits and dots, or containing ':' without a scheme) must parse as one.
            let looks_ip = addr.chars().all(|c| c.is_ascii_digit() || c == '.')
                || (addr.contains(':') && !addr.starts_with("unix://"));
            if addr.is_empty() {
                v.error_at("address", "address must not be empty");
            } else if looks_ip && !addr.contains('/') && parse_ip_block(addr).is_err() {
                v.error_at("address", format!("{addr:?} is not a valid IP address"));
            }
        }
    }
}
