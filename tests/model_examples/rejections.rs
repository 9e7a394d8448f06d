//! Rejections: every case of the bad-case table is reported with its code, field path and
//! line; diagnostics name their object; locating field paths in a document.

use ambient::config::diagnostic::{Code, Severity};
use ambient::config::yaml::{Decoded, Document, locate};
use ambient::model::{Kind, ObjectRef};

use crate::bad_cases::{Bad, bad_cases};
use crate::{decode_all, decode_one};

/// Checks one decoded case against the line it should report; returns what differs.
pub fn check(case: &Bad, decoded: &Decoded, expected_line: usize) -> Result<(), String> {
    let [d] = decoded.diagnostics.as_slice() else {
        return Err(format!("expected exactly one diagnostic, got {:#?}", decoded.diagnostics));
    };
    let mut problems = Vec::new();
    if d.code != case.code {
        problems.push(format!("code {:?}, expected {:?}", d.code, case.code));
    }
    if d.field.as_deref() != case.field {
        problems.push(format!("field {:?}, expected {:?}", d.field, case.field));
    }
    if d.line != Some(expected_line) {
        problems.push(format!("line {:?}, expected {expected_line}", d.line));
    }
    if d.severity != case.code.severity() || d.file != "test.yaml" || d.message.is_empty() {
        problems.push(format!("severity/file/message wrong: {d:?}"));
    }
    if decoded.resource.is_some() {
        problems.push("a resource was returned despite the diagnostic".to_string());
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{} ({d})", problems.join("; "))) }
}

#[test]
fn bad_documents_are_rejected_with_code_field_and_line() {
    let mut failures = Vec::new();
    for case in bad_cases() {
        let decoded = decode_one(case.text());
        if case.at_document_start() {
            assert_eq!(case.marked_line(), 1, "{}: document-level problems are marked on line 1", case.name);
        }
        if let Err(e) = check(&case, &decoded, case.marked_line()) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn bad_case_table_covers_every_document_level_code() {
    let cases = bad_cases();
    for code in [
        Code::YamlSyntax,
        Code::MissingTypeInfo,
        Code::UnsupportedVersion,
        Code::SchemaViolation,
        Code::InvalidValue,
        Code::IgnoredKind,
    ] {
        assert!(cases.iter().any(|c| c.code == code), "no case for {code:?}");
    }
    for kind in Kind::ALL {
        let name = format!("kind: {}\n", kind.name());
        assert!(
            cases
                .iter()
                .any(|c| c.text().contains(&name) && matches!(c.code, Code::SchemaViolation | Code::InvalidValue)),
            "no value or schema case for {kind}"
        );
    }
}

/// Property: diagnostics carry absolute file lines. Each bad document, placed after a valid
/// document of varying length (and comment lines), reports its line shifted by exactly the
/// lines before it (or, for document-level problems, its `---` line), and does not disturb the
/// valid neighbour.
#[test]
fn diagnostic_lines_are_absolute_in_the_file() {
    let mut failures = Vec::new();
    for (i, case) in bad_cases().iter().enumerate() {
        let filler = "# filler\n".repeat(i % 4);
        let prefix = format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: neighbour-{i}\n  namespace: shop\n{filler}---\n"
        );
        let offset = prefix.lines().count();
        let text = format!("{prefix}{}", case.text());
        let decoded = decode_all(&text);
        if decoded.len() != 2 {
            failures.push(format!("{}: {} documents", case.name, decoded.len()));
            continue;
        }
        if !decoded[0].diagnostics.is_empty() || decoded[0].resource.is_none() {
            failures.push(format!("{}: the valid neighbour was disturbed: {:?}", case.name, decoded[0].diagnostics));
        }
        // Document-level problems point at the document's start: its `---` line.
        let expected = if case.at_document_start() { offset } else { case.marked_line() + offset };
        if let Err(e) = check(case, &decoded[1], expected) {
            failures.push(format!("{} (offset {offset}): {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn diagnostics_name_the_object_when_it_can_be_read() {
    let bad = decode_one(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  action: MAYBE\n",
    );
    assert_eq!(bad.object, Some(ObjectRef::new(Kind::AuthorizationPolicy, "shop", "p")));
    assert_eq!(bad.diagnostics[0].object.as_deref(), Some("AuthorizationPolicy shop/p"));
    let rendered = bad.diagnostics[0].to_string();
    assert!(
        rendered.starts_with("test.yaml:7 AMB0004 error AuthorizationPolicy shop/p field `spec.action`: "),
        "{rendered}"
    );

    // Namespace defaulted in the name of a broken namespaced object.
    let bad = decode_one("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: Internal\n");
    assert_eq!(bad.diagnostics[0].object.as_deref(), Some("Service default/web"));

    // An ignored kind is still described.
    let ignored = decode_one("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n");
    assert_eq!(ignored.diagnostics[0].object.as_deref(), Some("Deployment shop/web"));
    assert_eq!(ignored.diagnostics[0].severity, Severity::Info);
    assert!(ignored.object.is_none());
}

#[test]
fn every_invalid_value_is_reported_not_just_the_first() {
    let text = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: Many_Problems
  namespace: shop
spec:
  action: DENY
  rules:
  - from:
    - source:
        ipBlocks:
        - 10.0.0.0/8
        - 999.0.0.0/8
        notRemoteIpBlocks:
        - fd00::/129
    to:
    - operation:
        ports: [\"0\"]
";
    let decoded = decode_one(text);
    assert!(decoded.resource.is_none());
    let got: Vec<(Code, Option<&str>, Option<usize>)> =
        decoded.diagnostics.iter().map(|d| (d.code, d.field.as_deref(), d.line)).collect();
    assert_eq!(
        got,
        vec![
            (Code::InvalidValue, Some("metadata.name"), Some(4)),
            (Code::InvalidValue, Some("spec.rules[0].from[0].source.ipBlocks[1]"), Some(13)),
            (Code::InvalidValue, Some("spec.rules[0].from[0].source.notRemoteIpBlocks[0]"), Some(15)),
            (Code::InvalidValue, Some("spec.rules[0].to[0].operation.ports[0]"), Some(18)),
        ]
    );
}

#[test]
fn locate_follows_paths_through_nested_lists() {
    let text = "\
spec:
  rules:
  - from:
    - source:
        principals: [a]
    - source:
        ipBlocks:
        - 10.0.0.0/8
        # a comment between items
        - 10.0.0.1
    to:
    - operation:
        ports: [\"1\"]
  - to:
    - operation:
        ports:
        - \"80\"
        - \"81\"
";
    let doc = Document { text, start_line: 100 };
    let cases = [
        ("spec", 100),
        ("spec.rules[0]", 102),
        ("spec.rules[0].from[1].source", 105),
        ("spec.rules[0].from[1].source.ipBlocks[1]", 109),
        ("spec.rules[0].to[0].operation.ports[0]", 112),
        ("spec.rules[1].to[0].operation.ports[1]", 117),
        // Unknown tails fall back to the deepest line found.
        ("spec.rules[1].when[0]", 113),
        ("spec.rules[7]", 101),
        ("nothing.here", 100),
    ];
    for (field, line) in cases {
        assert_eq!(locate(&doc, field), line, "{field}");
    }
}
