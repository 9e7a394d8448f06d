//! What the fake API server computes from JSON alone: query decoding, label selectors,
//! server-side apply's merge and release of fields, `managedFields`, and the status the
//! controllers would write.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

pub(super) fn parse_query(query: &str) -> BTreeMap<String, String> {
    query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

/// Percent-decoding of a query component (`+` is a space, as form encoding writes it).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an object's labels match a selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined).
pub(super) fn matches_selector(object: &Value, selector: &str) -> bool {
    let labels = object.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
    let value = |k: &str| labels.get(k.trim()).and_then(Value::as_str).map(str::to_string);
    selector.split(',').filter(|r| !r.trim().is_empty()).all(|requirement| {
        if let Some((k, v)) = requirement.split_once("!=") {
            value(k).as_deref() != Some(v.trim())
        } else if let Some((k, v)) = requirement.split_once("==").or_else(|| requirement.split_once('=')) {
            value(k).as_deref() == Some(v.trim())
        } else if let Some(k) = requirement.trim().strip_prefix('!') {
            value(k).is_none()
        } else {
            value(requirement).is_some()
        }
    })
}

/// The status a workload controller would write: every pod ready, or none yet.
pub(super) fn workload_status(object: &Value, nodes: i64, ready: bool) -> Value {
    let generation = object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let available = |n: i64| if ready { n } else { 0 };
    if object["kind"] == "DaemonSet" {
        json!({
            "observedGeneration": generation,
            "currentNumberScheduled": nodes,
            "desiredNumberScheduled": nodes,
            "numberMisscheduled": 0,
            "updatedNumberScheduled": nodes,
            "numberReady": available(nodes),
            "numberAvailable": available(nodes),
            "numberUnavailable": nodes - available(nodes),
        })
    } else {
        let replicas = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available(replicas),
            "availableReplicas": available(replicas),
            "unavailableReplicas": replicas - available(replicas),
        })
    }
}

pub(super) fn crd_status(object: &Value, established: bool) -> Value {
    let condition = |kind: &str, status: bool, reason: &str| {
        json!({ "type": kind, "status": if status { "True" } else { "False" }, "reason": reason,
                "lastTransitionTime": "2025-06-02T09:30:00Z", "message": "" })
    };
    json!({
        "acceptedNames": object.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "conditions": [
            condition("NamesAccepted", true, "NoConflicts"),
            condition("Established", established, if established { "InitialNamesAccepted" } else { "Installing" }),
        ],
        "storedVersions": object.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten()
            .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
    })
}

/// Recursive merge: objects by key, everything else replaced.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                if slot.is_object() && v.is_object() {
                    merge(slot, v);
                } else {
                    *slot = v.clone();
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Every leaf path of an applied configuration (arrays count as leaves).
pub(super) fn leaves(value: &Value) -> BTreeSet<Vec<String>> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

pub(super) fn remove_path(target: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = target;
    for p in parents {
        match node.get_mut(p) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// `fieldsV1` of an applied configuration, as the server writes it (`f:` keys, `.` for maps).
fn fields_v1(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                let mut inner = fields_v1(v);
                if v.is_object()
                    && let Some(o) = inner.as_object_mut()
                {
                    o.insert(".".into(), json!({}));
                }
                out.insert(format!("f:{k}"), inner);
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// The object's managed fields: the entries it had from other writers (recorded objects), and
/// one `Apply` entry per applying manager.
pub(super) fn managed_fields(before: &Value, applied: &BTreeMap<String, Value>, api_version: &str) -> Value {
    let mut entries: Vec<Value> = before
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| !(e["operation"] == "Apply" && e["manager"].as_str().is_some_and(|m| applied.contains_key(m))))
        .cloned()
        .collect();
    for (manager, config) in applied {
        let mut fields = fields_v1(config);
        if let Some(meta) = fields.get_mut("f:metadata").and_then(Value::as_object_mut) {
            // The server does not record ownership of the object's identity.
            meta.remove("f:name");
            meta.remove("f:namespace");
            meta.remove(".");
            if meta.is_empty()
                && let Some(f) = fields.as_object_mut()
            {
                f.remove("f:metadata");
            }
        }
        // A manager that owns nothing any more has no entry.
        if fields.as_object().is_some_and(|f| f.is_empty()) {
            continue;
        }
        entries.push(json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": "2025-06-02T09:30:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }));
    }
    Value::Array(entries)
}
