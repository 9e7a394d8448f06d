//! The primary plugin's result (`prevResult`): the pod's addresses are read from it, and it is
//! printed back unchanged except for the layout differences between spec versions (0.3.x/0.4.0
//! IP entries carry `"version": "4"|"6"`, 1.0.0 dropped it).

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{ErrorCode, PluginError};

/// The pod's addresses: `prevResult.ips[].address` (CIDR notation, the prefix is dropped).
pub fn pod_ips(prev_result: &Value) -> Result<Vec<IpAddr>, PluginError> {
    let Some(ips) = prev_result.get("ips") else { return Ok(Vec::new()) };
    let ips = ips.as_array().ok_or_else(|| invalid("prevResult.ips is not a list".to_owned()))?;
    ips.iter()
        .enumerate()
        .map(|(index, entry)| {
            let address = entry
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("prevResult.ips[{index}] has no address string")))?;
            address.parse::<ipnet::IpNet>().map(|net| net.addr()).map_err(|_| {
                invalid(format!("prevResult.ips[{index}].address {address:?} is not an address/prefix-length"))
            })
        })
        .collect()
}

/// `prev_result` in the layout of spec version `version` (the runtime expects the result in the
/// configuration's `cniVersion`).
pub fn in_version(prev_result: &Value, version: &str) -> Result<Value, PluginError> {
    let mut result: Map<String, Value> =
        prev_result.as_object().cloned().ok_or_else(|| invalid("prevResult is not a JSON object".to_owned()))?;
    let with_ip_version = version.starts_with("0.");
    if let Some(Value::Array(ips)) = result.get_mut("ips") {
        for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
            if with_ip_version {
                if !ip.contains_key("version") {
                    let family = ip.get("address").and_then(Value::as_str).and_then(|a| a.parse::<ipnet::IpNet>().ok());
                    let family = match family {
                        Some(ipnet::IpNet::V4(_)) => "4",
                        Some(ipnet::IpNet::V6(_)) => "6",
                        None => continue,
                    };
                    ip.insert("version".to_owned(), Value::from(family));
                }
            } else {
                ip.remove("version");
            }
        }
    }
    result.insert("cniVersion".to_owned(), Value::from(version));
    Ok(Value::Object(result))
}

fn invalid(msg: String) -> PluginError {
    PluginError::new(ErrorCode::InvalidNetworkConfig, msg, "prevResult must be the primary plugin's result")
}
