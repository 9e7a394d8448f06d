//! Kubernetes core/v1 and discovery/v1 resources (from k8s-openapi) and their value checks.

use std::net::IpAddr;

pub use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::validate::{Validate, Validator};

fn ip(v: &mut Validator, name: &str, value: &str) {
    if value.parse::<IpAddr>().is_err() {
        v.error_at(name, format!("{value:?} is not a valid IP address"));
    }
}

fn one_of(v: &mut Validator, name: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        v.error_at(name, format!("unknown value {value:?}, expected one of {}", allowed.join(", ")));
    }
}

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// A named port must be an IANA_SVC_NAME: 1-15 lowercase alphanumerics or '-', with a letter.
pub fn valid_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

impl Validate for Service {
    fn validate(&self, v: &mut Validator) {
        let Some(spec) = &self.spec else { return };
        v.at("spec", |v| {
            if let Some(t) = &spec.type_ {
                one_of(v, "type", t, &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]);
            }
            if let Some(cip) = &spec.cluster_ip
                && !cip.is_empty()
                && cip != "None"
            {
                ip(v, "clusterIP", cip);
            }
            v.each("clusterIPs", spec.cluster_ips.as_deref().unwrap_or_default(), |v, cip| {
                if cip != "None" && cip.parse::<IpAddr>().is_err() {
                    v.error(format!("{cip:?} is not a valid IP address"));
                }
            });
            v.each("ports", spec.ports.as_deref().unwrap_or_default(), |v, p| {
                v.port("port", p.port.into());
                if let Some(np) = p.node_port {
                    v.port("nodePort", np.into());
                }
                match &p.target_port {
                    Some(IntOrString::Int(n)) => v.port("targetPort", (*n).into()),
                    Some(IntOrString::String(s)) if !valid_port_name(s) => {
                        v.error_at("targetPort", format!("{s:?} is neither a port number nor a valid port name"))
                    }
                    _ => {}
                }
                if let Some(proto) = &p.protocol {
                    one_of(v, "protocol", proto, PROTOCOLS);
                }
            });
        });
    }
}

impl Validate for Pod {
    fn validate(&self, v: &mut Validator) {
        if let Some(spec) = &self.spec {
            v.at("spec", |v| {
                v.each("containers", &spec.containers, |v, c| {
                    if c.name.is_empty() {
                        v.error_at("name", "container name is required");
                    }
                    v.each("ports", c.ports.as_deref().unwrap_or_default(), |v, p| {
                        v.port("containerPort", p.container_port.into());
                        if let Some(name) = &p.name
                            && !valid_port_name(name)
                        {
                            v.error_at("name", format!("{name:?} is not a valid port name"));
                        }
                        if let Some(proto) = &p.protocol {
                            one_of(v, "protocol", proto, PROTOCOLS);
                        }
                    });
                });
            });
        }
        if let Some(status) = &self.status {
            v.at("status", |v| {
                if let Some(pip) = &status.pod_ip {
                    ip(v, "podIP", pip);
                }
                v.each("podIPs", status.pod_ips.as_deref().unwrap_or_default(), |v, p| ip(v, "ip", &p.ip));
                if let Some(hip) = &status.host_ip {
                    ip(v, "hostIP", hip);
                }
            });
        }
    }
}

impl Validate for EndpointSlice {
    fn validate(&self, v: &mut Validator) {
        one_of(v, "addressType", &self.address_type, &["IPv4", "IPv6", "FQDN"]);
        let check_ips = self.address_type != "FQDN";
        v.each("endpoints", &self.endpoints, |v, e| {
            if check_ips {
                v.each("addresses", &e.addresses, |v, a| {
                    if a.parse::<IpAddr>().is_err() {
                        v.error(format!("{a:?} is not a valid IP address"));
                    }
                });
            }
        });
        v.each("ports", self.ports.as_deref().unwrap_or_default(), |v, p| {
            if let Some(port) = p.port {
                v.port("port", port.into());
            }
            if let Some(proto) = &p.protocol {
                one_of(v, "protocol", proto, PROTOCOLS);
            }
        });
    }
}

impl Validate for Namespace {
    fn validate(&self, _: &mut Validator) {}
}

impl Validate for ServiceAccount {
    fn validate(&self, _: &mut Validator) {}
}
