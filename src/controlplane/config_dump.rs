//! `/debug/config_dump`: every resource the xDS server serves, decoded, by type.

use prost::Message;
use serde_json::{Value, json};

use crate::xds::proto::security::Authorization;
use crate::xds::proto::workload::Address;
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use crate::xds::server::Cache;

pub fn view(cache: &Cache) -> Value {
    let mut types = serde_json::Map::new();
    for type_url in [ADDRESS_TYPE, AUTHORIZATION_TYPE] {
        let mut entries = cache.snapshot(type_url);
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let resources: Vec<Value> = entries
            .iter()
            .map(|entry| {
                json!({
                    "name": entry.name,
                    "version": &*entry.version,
                    "aliases": entry.aliases,
                    "resource": decode(type_url, &entry.body),
                })
            })
            .collect();
        types.insert(type_url.to_string(), Value::Array(resources));
    }
    json!({ "revision": cache.revision(), "resources": types })
}

fn decode(type_url: &str, body: &bytes::Bytes) -> Value {
    let decoded = match type_url {
        ADDRESS_TYPE => Address::decode(body.clone()).map(serde_json::to_value),
        _ => Authorization::decode(body.clone()).map(serde_json::to_value),
    };
    match decoded {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => json!({ "error": error.to_string() }),
        Err(error) => json!({ "error": format!("undecodable resource: {error}") }),
    }
}
