//! Multi-document YAML into typed [`Resource`]s, one document at a time.
//!
//! Documents are split on their `---` / `...` markers before parsing, so a syntax error in one
//! document cannot hide the others. Each document is then decoded in two steps: a tolerant read
//! of `apiVersion`, `kind` and `metadata` (so even a broken object can be named), then the typed
//! decode, whose errors carry the field path and line, then value validation.

use serde::Deserialize;

use super::diagnostic::{Code, Diagnostic};
use crate::model::{Kind, KindError, ObjectRef, Resource};

/// One document of a YAML stream, with the 1-based line its text starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    pub text: &'a str,
    pub start_line: usize,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// Splits a YAML stream into its documents. A `---` or `...` at the start of a line always ends
/// the previous document in YAML (even inside a block scalar), so a line scan is exact.
/// Documents with nothing but comments and blank lines are dropped.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    let mut push = |from: usize, to: usize, line: usize| {
        let body = &text[from..to];
        let has_content = body.lines().any(|l| {
            // On a `---` line, only what follows the marker counts (`--- {a: 1}` has content).
            let t = if is_marker(l, "---") { l[3..].trim() } else { l.trim() };
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        });
        if has_content {
            docs.push(Document { text: body, start_line: line });
        }
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") {
            push(start_byte, offset, start_line);
            // The marker line starts the next document (it may carry content: `--- {a: 1}`).
            start_byte = offset;
            start_line = line_no;
        } else if is_marker(bare, "...") {
            push(start_byte, offset, start_line);
            start_byte = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    push(start_byte, text.len(), start_line);
    docs
}

/// The parts of any object that identify it, read leniently.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<serde_json::Value>,
    kind: Option<serde_json::Value>,
    #[serde(default)]
    metadata: Option<HeadMeta>,
}

#[derive(Deserialize, Default)]
struct HeadMeta {
    name: Option<serde_json::Value>,
    namespace: Option<serde_json::Value>,
}

fn as_str(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The outcome of decoding one document.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The object, when it decoded and validated cleanly.
    pub resource: Option<Resource>,
    /// Who the document is, when that much could be read even if the rest is broken.
    pub object: Option<ObjectRef>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Options for [`decode_document`].
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Namespace given to namespaced objects that name none (kubectl's `default`).
    pub default_namespace: String,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { default_namespace: "default".to_string() }
    }
}

/// saphyr's message, with its own "at line X column Y" suffix dropped (we report the line).
fn saphyr_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn saphyr_line(err: &serde_saphyr::Error, doc: &Document) -> usize {
    match err.location() {
        Some(loc) if loc.line() > 0 => doc.start_line + loc.line() as usize - 1,
        _ => doc.start_line,
    }
}

/// Decodes one document. `source` names where it came from (a path, `<stdin>`), for diagnostics.
pub fn decode_document(source: &str, doc: &Document, opts: &DecodeOptions) -> Decoded {
    let mut out = Decoded::default();
    let diag = |code: Code, line: usize, message: String| {
        let mut d = Diagnostic::new(code, source, message);
        d.line = Some(line);
        d
    };

    let head: Head = match serde_saphyr::from_str::<Option<serde_json::Value>>(doc.text) {
        Err(err) => {
            let d = diag(Code::YamlSyntax, saphyr_line(&err, doc), saphyr_message(&err));
            out.diagnostics.push(d);
            return out;
        }
        Ok(Some(value @ serde_json::Value::Object(_))) => serde_json::from_value(value).unwrap_or_default(),
        Ok(_) => {
            let msg = "document is not an object (expected a mapping with apiVersion and kind)";
            out.diagnostics.push(diag(Code::MissingTypeInfo, doc.start_line, msg.to_string()));
            return out;
        }
    };

    let api_version = as_str(&head.api_version);
    let kind_name = as_str(&head.kind);
    let meta = head.metadata.unwrap_or_default();
    let name = as_str(&meta.name);
    let namespace = as_str(&meta.namespace);
    let describe = |kind: &str| {
        let name = name.as_deref().unwrap_or("<unnamed>");
        match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        }
    };

    let (Some(api_version), Some(kind_name)) = (api_version, kind_name) else {
        let missing =
            if head.api_version.is_none() || as_str(&head.api_version).is_none() { "apiVersion" } else { "kind" };
        let mut d = diag(Code::MissingTypeInfo, doc.start_line, format!("`{missing}` is missing or not a string"));
        d.field = Some(missing.to_string());
        out.diagnostics.push(d);
        return out;
    };

    let kind = match Kind::from_api(&api_version, &kind_name) {
        Ok(kind) => kind,
        Err(err @ KindError::UnknownKind { .. }) => {
            let mut d = diag(Code::IgnoredKind, doc.start_line, format!("{err}; ignored"));
            d.object = Some(describe(&kind_name));
            out.diagnostics.push(d);
            return out;
        }
        Err(err @ KindError::UnsupportedVersion { .. }) => {
            let mut d = diag(Code::UnsupportedVersion, locate(doc, "apiVersion"), err.to_string());
            d.object = Some(describe(&kind_name));
            d.field = Some("apiVersion".to_string());
            out.diagnostics.push(d);
            return out;
        }
    };

    let effective_ns = match (kind.namespaced(), &namespace) {
        (true, Some(ns)) => ns.clone(),
        (true, None) => opts.default_namespace.clone(),
        (false, _) => String::new(),
    };
    let object = name.clone().map(|n| ObjectRef::new(kind, effective_ns.clone(), n));
    out.object = object.clone();
    let object_label = object.as_ref().map(ToString::to_string).unwrap_or_else(|| describe(kind.name()));

    // Typed decode. Versions other than the preferred one share its schema (the typed decode
    // ignores `apiVersion`), so every accepted version reads into the same type.
    let mut resource = match decode_typed(kind, doc.text) {
        Ok(r) => r,
        Err((field, err)) => {
            let mut d = diag(Code::SchemaViolation, saphyr_line(&err, doc), saphyr_message(&err));
            d.object = Some(object_label);
            d.field = field;
            out.diagnostics.push(d);
            return out;
        }
    };

    if kind.namespaced() && resource.meta().namespace.is_none() {
        resource.meta_mut().namespace = Some(effective_ns);
    }

    let problems = resource.validate();
    if !problems.is_empty() {
        for p in problems {
            let mut d = diag(Code::InvalidValue, locate(doc, &p.field), p.message);
            d.object = Some(object_label.clone());
            d.field = Some(p.field);
            out.diagnostics.push(d);
        }
        return out;
    }
    out.resource = Some(resource);
    out
}

/// Decodes `text` as `kind`; on failure returns the path of the offending field (if any).
fn decode_typed(kind: Kind, text: &str) -> Result<Resource, (Option<String>, serde_saphyr::Error)> {
    let mut path = None;
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
        Resource::deserialize(kind, tracked).inspect_err(|_| {
            let p = track.path().to_string();
            path = (p != "." && !p.is_empty()).then_some(p);
        })
    });
    result.map_err(|e| (path, e))
}

/// Best-effort line of a field path like `spec.rules[0].from[1].source.ipBlocks[2]` inside a
/// document: follows each key in order down the text, then list items by counting `- ` entries
/// below their key. Falls back to the deepest line found so far (or the document's first line).
pub fn locate(doc: &Document, field: &str) -> usize {
    let lines: Vec<&str> = doc.text.lines().collect();
    let content = |l: &str| l.trim_start().trim_start_matches("- ").trim_start().len();
    // Column where a line's key starts (after any `- ` item markers).
    let key_col = |l: &str| l.len() - content(l);
    let dash_col = |l: &str| l.len() - l.trim_start().len();
    let is_item = |l: &str| {
        let t = l.trim_start();
        t.starts_with("- ") || t == "-"
    };
    let blank = |l: &str| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    };
    let mut pos = 0usize;
    let mut min_col = 0usize;
    let mut found = None;
    'segments: for seg in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = seg.split_at(seg.find('[').unwrap_or(seg.len()));
        let plain = format!("{key}:");
        let quoted = format!("\"{key}\":");
        let key_line = (pos..lines.len()).find(|&i| {
            let l = lines[i];
            let t = &l[key_col(l)..];
            !blank(l) && key_col(l) >= min_col && (t.starts_with(&plain) || t.starts_with(&quoted))
        });
        let Some(kl) = key_line else { break };
        found = Some(kl);
        pos = kl;
        min_col = key_col(lines[kl]) + 1;
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Ok(n) = idx.parse::<usize>() else { break 'segments };
            let parent_col = key_col(lines[pos]);
            let mut item_col = None;
            let mut count = 0;
            let mut hit = None;
            for (i, l) in lines.iter().enumerate().skip(pos + 1) {
                if blank(l) {
                    continue;
                }
                let dash = dash_col(l);
                if !is_item(l) && key_col(l) <= parent_col || is_item(l) && dash < parent_col {
                    break;
                }
                if !is_item(l) {
                    continue;
                }
                match item_col {
                    None => item_col = Some(dash),
                    Some(c) if dash > c => continue,
                    Some(c) if dash < c => break,
                    _ => {}
                }
                if count == n {
                    hit = Some(i);
                    break;
                }
                count += 1;
            }
            let Some(i) = hit else { break 'segments };
            found = Some(i);
            pos = i;
            min_col = item_col.unwrap_or(0) + 2;
        }
    }
    doc.start_line + found.unwrap_or(0)
}

#[cfg(test)]
mod tests;
