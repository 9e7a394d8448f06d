//! The model against realistic resources.
//!
//! Every document under `tests/fixtures/examples/` (shaped after the examples published by Istio,
//! Gateway API and Kubernetes) must decode with no diagnostics, and specific values are checked
//! per kind. Broken documents must be rejected with the right code, the path of the offending
//! field, and its line in the file.
//!
//! The pieces: [`fixtures`] loads the examples and checks decoded values kind by kind,
//! [`tolerance`] what the decoder lets pass, [`bad_cases`] the table of broken documents that
//! [`rejections`] checks, and [`validation`] the validation helpers.

mod bad_cases;
mod fixtures;
mod rejections;
mod tolerance;
mod validation;

use std::collections::BTreeMap;

use ambient::config::yaml::{DecodeOptions, Decoded, decode_document, split_documents};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Decodes every document of `text` (as file `test.yaml`).
fn decode_all(text: &str) -> Vec<Decoded> {
    decode_all_with(text, &DecodeOptions::default())
}

fn decode_all_with(text: &str, opts: &DecodeOptions) -> Vec<Decoded> {
    split_documents(text).iter().map(|d| decode_document("test.yaml", d, opts)).collect()
}

/// Decodes a text holding exactly one document.
fn decode_one(text: &str) -> Decoded {
    let mut all = decode_all(text);
    assert_eq!(all.len(), 1, "expected one document in:\n{text}");
    all.remove(0)
}
