//! Tolerance: unknown fields, broken neighbours, document markers, empty specs, line endings.

use ambient::config::diagnostic::{Code, Severity};
use ambient::config::yaml::split_documents;
use ambient::model::Resource;
use ambient::model::security::{AuthorizationAction, AuthorizationPolicySpec};

use crate::bad_cases::bad_cases;
use crate::fixtures::{EXAMPLES, example, fixtures_dir};
use crate::rejections::check;
use crate::{decode_all, decode_one, strings};

#[test]
fn unknown_fields_anywhere_are_tolerated() {
    let text = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
futureTopLevel: true
metadata:
  name: tolerant
  namespace: shop
  someNewMetadataField: {a: 1}
spec:
  notYetInvented: [1, 2, 3]
  action: DENY
  rules:
  - extraRuleField: x
    from:
    - source:
        principals: [\"cluster.local/ns/shop/sa/a\"]
        sourceLabels: {app: x}
      extraFromField: 1
    to:
    - operation:
        methods: [GET]
        grpcServices: [foo.Bar]
    when:
    - key: source.ip
      values: [10.0.0.1]
      extra: true
status:
  validationMessages: []
---
apiVersion: v1
kind: Service
metadata:
  name: tolerant
  namespace: shop
spec:
  someAlphaFeature: enabled
  ports:
  - port: 80
    appProtocol: http
    whatIsThis: 7
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: tolerant
  namespace: shop
spec:
  parentRefs:
  - name: gw
    newParentField: 1
  rules:
  - sessionPersistence: {sessionName: s}
    backendRefs:
    - name: svc
      port: 80
      filters: []
";
    let decoded = decode_all(text);
    assert_eq!(decoded.len(), 3);
    for d in &decoded {
        assert!(d.diagnostics.is_empty(), "{:#?}", d.diagnostics);
    }
    let Some(Resource::AuthorizationPolicy(ap)) = &decoded[0].resource else { panic!("{:?}", decoded[0]) };
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    assert_eq!(ap.spec.rules.as_ref().unwrap()[0].to[0].operation.methods, strings(&["GET"]));
    assert!(matches!(&decoded[1].resource, Some(Resource::Service(_))));
    assert!(matches!(&decoded[2].resource, Some(Resource::HttpRoute(_))));
}

#[test]
fn a_broken_document_does_not_hide_its_neighbours() {
    let text = "\
# three documents; the middle one is not YAML
apiVersion: v1
kind: ServiceAccount
metadata:
  name: first
  namespace: shop
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: [unclosed
  namespace: shop
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: third
  namespace: shop
";
    let decoded = decode_all(text);
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[0].resource.as_ref().map(Resource::name), Some("first"));
    assert!(decoded[0].diagnostics.is_empty());
    assert!(decoded[1].resource.is_none());
    assert_eq!(decoded[1].diagnostics.len(), 1);
    let d = &decoded[1].diagnostics[0];
    assert_eq!(d.code, Code::YamlSyntax);
    assert_eq!(d.severity, Severity::Error);
    let line = d.line.unwrap();
    // The unclosed `[` is on line 11; the parser notices on line 12. Either is inside document 2.
    assert!((11..=12).contains(&line), "syntax error reported at line {line}, outside document 2");
    assert_eq!(decoded[2].resource.as_ref().map(Resource::name), Some("third"));
    assert!(decoded[2].diagnostics.is_empty());
}

#[test]
fn split_documents_handles_markers_comments_and_empty_documents() {
    let text = "\
# leading comment only
---
a: 1
--- # a marker with a comment
b: 2
...
# after an end marker, before the next
---
---
# only a comment
--- {c: 3}
";
    let docs = split_documents(text);
    let got: Vec<(usize, &str)> = docs.iter().map(|d| (d.start_line, d.text.trim())).collect();
    assert_eq!(
        got,
        vec![(2, "---\na: 1"), (4, "--- # a marker with a comment\nb: 2"), (11, "--- {c: 3}")],
        "empty and comment-only documents are dropped; start lines are 1-based lines in the file"
    );
    // `---` inside a line, or not at the line start, is content.
    let docs = split_documents("a: \"x --- y\"\n  ---b: 1\n");
    assert_eq!(docs.len(), 1);
}

#[test]
fn null_or_brace_spec_is_an_empty_spec() {
    // `spec:` with no value is null, which the API server prunes as absent; `spec:` followed by
    // `{}` on the next line is how istio.io writes allow-nothing.
    for spec in ["spec:\n", "spec:\n  {}\n", "spec: ~\n", ""] {
        let text = format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n{spec}");
        let decoded = decode_one(&text);
        assert!(decoded.diagnostics.is_empty(), "{spec:?}: {:?}", decoded.diagnostics);
        let Some(Resource::AuthorizationPolicy(ap)) = decoded.resource else { panic!("{spec:?}") };
        assert_eq!(ap.spec, AuthorizationPolicySpec::default(), "{spec:?}");
        assert_eq!(ap.spec.rules, None);
    }
    // A null metadata still needs a name.
    let decoded = decode_one("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\nspec: {}\n");
    let fields: Vec<_> = decoded.diagnostics.iter().map(|d| (d.code, d.field.as_deref(), d.line)).collect();
    assert_eq!(fields, vec![(Code::InvalidValue, Some("metadata.name"), Some(3))]);
}

#[test]
fn windows_line_endings_and_byte_order_mark_change_nothing() {
    for (file, docs) in &EXAMPLES.per_file {
        let text = std::fs::read_to_string(fixtures_dir().join(file)).unwrap();
        let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
        let decoded = decode_all(&crlf);
        assert_eq!(decoded.len(), *docs, "{file}");
        for d in decoded {
            assert!(d.diagnostics.is_empty(), "{file}: {:?}", d.diagnostics);
            let r = d.resource.unwrap();
            assert_eq!(&r, &example(r.kind(), r.namespace(), r.name()).resource, "{file}");
        }
    }
    let mut failures = Vec::new();
    for case in bad_cases() {
        let crlf = case.text().replace('\n', "\r\n");
        if let Err(e) = check(&case, &decode_one(&crlf), case.marked_line()) {
            failures.push(format!("{} (CRLF): {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
