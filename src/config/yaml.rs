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
    /// The line the document (or `List` item) starts on.
    pub line: usize,
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
/// saphyr's advice about its own parser options (", set X in Options if acceptable") is dropped
/// too: a user cannot set them.
fn saphyr_message(err: &serde_saphyr::Error) -> String {
    let mut text = err.without_snippet().to_string();
    if let Some(at) = text.rfind(" at line ") {
        text.truncate(at);
    }
    if let Some(at) = text.find(", set ").filter(|at| text[*at..].contains(" in Options")) {
        text.truncate(at);
    }
    text
}

fn saphyr_line(err: &serde_saphyr::Error, doc: &Document) -> usize {
    match err.location() {
        Some(loc) if loc.line() > 0 => doc.start_line + loc.line() as usize - 1,
        _ => doc.start_line,
    }
}

/// Decodes every document of a YAML stream, expanding `v1` `List` documents (what
/// `kubectl get -o yaml` prints) into their items. `source` names where the text came from.
pub fn decode_stream(source: &str, text: &str, opts: &DecodeOptions) -> Vec<Decoded> {
    let mut out = Vec::new();
    for doc in split_documents(text) {
        let value = match parse_value(source, &doc) {
            Ok(value) => value,
            Err(failed) => {
                out.push(*failed);
                continue;
            }
        };
        match list_items(&doc, &value) {
            Some(items) => {
                for (item_text, line) in items {
                    let item = Document { text: &item_text, start_line: line };
                    out.push(decode_document(source, &item, opts));
                }
            }
            None => out.push(decode_value(source, &doc, opts, value)),
        }
    }
    out
}

/// Decodes one document. `source` names where it came from (a path, `<stdin>`), for diagnostics.
pub fn decode_document(source: &str, doc: &Document, opts: &DecodeOptions) -> Decoded {
    match parse_value(source, doc) {
        Ok(value) => decode_value(source, doc, opts, value),
        Err(failed) => *failed,
    }
}

fn diagnostic_at(source: &str, code: Code, line: usize, message: String) -> Diagnostic {
    let mut d = Diagnostic::new(code, source, message);
    d.line = Some(line);
    d
}

/// Parses a document into a generic value; a syntax error or a non-object is the whole answer.
fn parse_value(source: &str, doc: &Document) -> Result<serde_json::Value, Box<Decoded>> {
    let failed = |code, line, message: &str| {
        let diagnostics = vec![diagnostic_at(source, code, line, message.to_string())];
        Box::new(Decoded { line: doc.start_line, diagnostics, ..Decoded::default() })
    };
    match serde_saphyr::from_str::<Option<serde_json::Value>>(doc.text) {
        Err(err) => Err(failed(Code::YamlSyntax, saphyr_line(&err, doc), &saphyr_message(&err))),
        Ok(Some(value @ serde_json::Value::Object(_))) => Ok(value),
        Ok(_) => Err(failed(
            Code::MissingTypeInfo,
            doc.start_line,
            "document is not an object (expected a mapping with apiVersion and kind)",
        )),
    }
}

/// The items of a `v1` `List` document, each as its own text and the line it starts on.
/// Block-style items are cut out of the document and dedented, so lines inside them stay exact;
/// anything else (JSON, flow style) is re-rendered as JSON and located at its `items` key.
fn list_items(doc: &Document, value: &serde_json::Value) -> Option<Vec<(String, usize)>> {
    if value.get("kind")?.as_str()? != "List" || value.get("apiVersion")?.as_str()? != "v1" {
        return None;
    }
    let items = value.get("items").and_then(|i| i.as_array()).map(Vec::as_slice).unwrap_or_default();
    if let Some(cut) = cut_block_items(doc.text, items.len()) {
        return Some(cut.into_iter().map(|(text, offset)| (text, doc.start_line + offset)).collect());
    }
    let line = locate(doc, "items");
    Some(items.iter().map(|item| (serde_json::to_string_pretty(item).unwrap_or_default(), line)).collect())
}

/// Cuts the top-level `items:` block sequence into its entries: `(dedented text, line offset)`.
/// `None` when the text does not hold exactly `expected` block items.
fn cut_block_items(text: &str, expected: usize) -> Option<Vec<(String, usize)>> {
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.iter().position(|l| l.starts_with("items:"))?;
    if !lines[key]["items:".len()..].trim().is_empty() {
        return None; // `items: []` or a flow sequence
    }
    let mut starts = Vec::new();
    let mut end = lines.len();
    let mut dash_col = None;
    for (i, line) in lines.iter().enumerate().skip(key + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = line.len() - trimmed.len();
        let is_item = trimmed.starts_with("- ") || trimmed == "-";
        match dash_col {
            None if is_item => dash_col = Some(col),
            Some(d) if is_item && col == d => {}
            Some(d) if col > d => continue,
            _ => {
                end = i;
                break;
            }
        }
        starts.push(i);
    }
    if starts.len() != expected {
        return None;
    }
    let indent = dash_col.unwrap_or(0) + 2;
    let bounds = starts.iter().copied().zip(starts.iter().skip(1).copied().chain(std::iter::once(end)));
    let items = bounds.map(|(from, to)| {
        let mut text = String::new();
        for (n, line) in lines[from..to].iter().enumerate() {
            // The first line's `- ` becomes indentation; then everything moves left by `indent`.
            let line = if n == 0 { line.replacen("- ", "  ", 1) } else { line.to_string() };
            let cut = line.char_indices().take_while(|(i, c)| *i < indent && *c == ' ').count();
            text.push_str(&line[cut..]);
            text.push('\n');
        }
        (text, from)
    });
    Some(items.collect())
}

/// Decodes a parsed document: identify it, decode it as its kind, validate it.
fn decode_value(source: &str, doc: &Document, opts: &DecodeOptions, value: serde_json::Value) -> Decoded {
    let mut out = Decoded { line: doc.start_line, ..Decoded::default() };
    let diag = |code: Code, line: usize, message: String| diagnostic_at(source, code, line, message);
    let head: Head = serde_json::from_value(value).unwrap_or_default();

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
        let missing = if as_str(&head.api_version).is_none() { "apiVersion" } else { "kind" };
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
        Err(TypedError { field, error }) => {
            let mut d = diag(Code::SchemaViolation, saphyr_line(&error, doc), saphyr_message(&error));
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

/// Why the typed decode failed: the offending field's path (if known) and saphyr's error.
struct TypedError {
    field: Option<String>,
    error: Box<serde_saphyr::Error>,
}

/// Decodes `text` as `kind`; on failure says which field was being read.
fn decode_typed(kind: Kind, text: &str) -> Result<Resource, TypedError> {
    let mut path = None;
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
        Resource::deserialize(kind, tracked).inspect_err(|_| {
            let p = track.path().to_string();
            path = (p != "." && !p.is_empty()).then_some(p);
        })
    });
    result.map_err(|e| TypedError { field: path, error: Box::new(e) })
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
    let mut at_item = false;
    'segments: for seg in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = seg.split_at(seg.find('[').unwrap_or(seg.len()));
        let plain = format!("{key}:");
        let quoted = format!("\"{key}\":");
        // Only the current node's direct children: lines inside its block whose key starts at the
        // column of its first child (the item line itself after an index). So an absent
        // `metadata.name` is not found in a container's `- name:`, nor `spec.hosts` in a label.
        let first = if at_item || found.is_none() { pos } else { pos + 1 };
        let block =
            || (first..lines.len()).take_while(|&i| i == pos || blank(lines[i]) || dash_col(lines[i]) >= min_col);
        let child_col = block()
            .find(|&i| !blank(lines[i]) && !is_marker(lines[i], "---") && lines[i].trim() != "-")
            .map(|i| key_col(lines[i]));
        let key_line = block().find(|&i| {
            let l = lines[i];
            let t = &l[key_col(l)..];
            !blank(l) && Some(key_col(l)) == child_col && (t.starts_with(&plain) || t.starts_with(&quoted))
        });
        let Some(kl) = key_line else { break };
        found = Some(kl);
        pos = kl;
        min_col = key_col(lines[kl]) + 1;
        at_item = false;
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
            at_item = true;
        }
    }
    doc.start_line + found.unwrap_or(0)
}

#[cfg(test)]
mod tests;
