use super::*;

#[test]
fn splits_on_markers_and_keeps_absolute_lines() {
    let text = "# leading comment\napiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\n...\n---\n# only a comment\n---\nkind: C\n";
    let docs = split_documents(text);
    let starts: Vec<usize> = docs.iter().map(|d| d.start_line).collect();
    assert_eq!(starts, vec![1, 4, 10]);
    assert!(docs[0].text.contains("kind: A") && !docs[0].text.contains("kind: B"));
    assert!(docs[1].text.starts_with("---\n") && docs[1].text.contains("kind: B"));
    assert_eq!(docs[2].text, "---\nkind: C\n");
}

#[test]
fn marker_needs_to_stand_alone() {
    // `---x` and an indented `---` are content, not markers.
    let docs = split_documents("a: |\n  ---\nb: ---x\n---x: 1\n");
    assert_eq!(docs.len(), 1);
    // A marker with content after it starts a document that includes that content.
    let docs = split_documents("a: 1\n--- {b: 2}\n");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].start_line, 2);
}

#[test]
fn crlf_and_empty_streams() {
    assert!(split_documents("").is_empty());
    assert!(split_documents("---\n---\n# nothing\n").is_empty());
    let docs = split_documents("a: 1\r\n---\r\nb: 2\r\n");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].start_line, 2);
}

fn locate_in(text: &str, field: &str) -> usize {
    locate(&Document { text, start_line: 10 }, field)
}

#[test]
fn locates_nested_fields_and_list_items() {
    let text = "\
spec:
  rules:
  - from:
    - source:
        namespaces: [a]
    - source:
        ipBlocks:
        - 10.0.0.0/8
        - bad
    to:
    - operation:
        ports: [\"1\"]
  - to:
    - operation:
        paths: [/x]
";
    assert_eq!(locate_in(text, "spec"), 10);
    assert_eq!(locate_in(text, "spec.rules[0]"), 12);
    assert_eq!(locate_in(text, "spec.rules[0].from[1].source"), 15);
    assert_eq!(locate_in(text, "spec.rules[0].from[1].source.ipBlocks[1]"), 18);
    assert_eq!(locate_in(text, "spec.rules[0].to[0].operation.ports[0]"), 21);
    assert_eq!(locate_in(text, "spec.rules[1].to[0].operation.paths"), 24);
    // Unknown paths fall back to the deepest line found.
    assert_eq!(locate_in(text, "spec.nothing"), 10);
    assert_eq!(locate_in(text, "nothing"), 10);
}

#[test]
fn decode_reports_schema_errors_with_field_and_line() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: shop\nspec:\n  ports:\n  - port: [1]\n";
    let docs = split_documents(text);
    let opts = DecodeOptions::default();
    let first = decode_document("f.yaml", &docs[0], &opts);
    assert!(first.diagnostics.is_empty(), "{:?}", first.diagnostics);
    assert_eq!(first.resource.map(|r| r.object_ref()), Some(ObjectRef::new(Kind::Namespace, "", "ok")));

    let second = decode_document("f.yaml", &docs[1], &opts);
    assert!(second.resource.is_none());
    assert_eq!(second.object, Some(ObjectRef::new(Kind::Service, "shop", "svc")));
    let [d] = second.diagnostics.as_slice() else { panic!("{:?}", second.diagnostics) };
    assert_eq!(d.code, Code::SchemaViolation);
    assert_eq!(d.field.as_deref(), Some("spec.ports[0].port"));
    assert_eq!(d.line, Some(13));
    assert_eq!(d.object.as_deref(), Some("Service shop/svc"));
}

#[test]
fn decode_fills_default_namespace_and_names_unknown_kinds() {
    let opts = DecodeOptions { default_namespace: "team-a".into() };
    let doc = Document { text: "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n", start_line: 1 };
    let decoded = decode_document("f", &doc, &opts);
    assert_eq!(decoded.resource.unwrap().namespace(), "team-a");

    let doc = Document { text: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n", start_line: 3 };
    let decoded = decode_document("f", &doc, &opts);
    let [d] = decoded.diagnostics.as_slice() else { panic!() };
    assert_eq!((d.code, d.severity, d.line), (Code::IgnoredKind, crate::config::Severity::Info, Some(3)));
    assert_eq!(d.object.as_deref(), Some("Deployment web"));

    let doc = Document { text: "- just\n- a list\n", start_line: 1 };
    assert_eq!(decode_document("f", &doc, &opts).diagnostics[0].code, Code::MissingTypeInfo);
    let doc = Document { text: "kind: Pod\nmetadata: {name: x}\n", start_line: 1 };
    let d = &decode_document("f", &doc, &opts).diagnostics[0];
    assert_eq!((d.code, d.field.as_deref()), (Code::MissingTypeInfo, Some("apiVersion")));
}

#[test]
fn syntax_errors_speak_to_the_user_not_about_parser_options() {
    let doc = Document { text: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n", start_line: 1 };
    let decoded = decode_document("f", &doc, &DecodeOptions::default());
    let [d] = decoded.diagnostics.as_slice() else { panic!("{:?}", decoded.diagnostics) };
    assert_eq!((d.code, d.line), (Code::YamlSyntax, Some(5)));
    assert!(d.message.contains("duplicate mapping key"), "{}", d.message);
    assert!(!d.message.contains("Options") && !d.message.contains(" at line "), "{}", d.message);
}
