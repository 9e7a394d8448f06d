//! Wrong types, unknown enum values, missing required fields: `SchemaViolation`.

use super::{
    AUTHORIZATION_POLICY, Bad, GATEWAY, HTTP_ROUTE, PEER_AUTHENTICATION, REQUEST_AUTHENTICATION, SERVICE,
    SERVICE_ACCOUNT, SERVICE_ENTRY, WORKLOAD_ENTRY, in_shop,
};

pub fn cases() -> Vec<Bad> {
    vec![
        bad!(
            "unknown AuthorizationPolicy action",
            SchemaViolation,
            Some("spec.action"),
            in_shop(AUTHORIZATION_POLICY, "undecided"),
            r#"
spec:
  action: MAYBE  # <- here
"#
        ),
        bad!(
            "rules is not a list",
            SchemaViolation,
            Some("spec.rules"),
            in_shop(AUTHORIZATION_POLICY, "wrong-shape"),
            r#"
spec:
  action: ALLOW
  rules: everything  # <- here
"#
        ),
        bad!(
            "from is a map instead of a list",
            SchemaViolation,
            Some("spec.rules[0].from"),
            in_shop(AUTHORIZATION_POLICY, "wrong-shape"),
            r#"
spec:
  rules:
  - from:
      source:  # <- here
        principals: ["a"]
"#
        ),
        bad!(
            "condition without a key",
            SchemaViolation,
            Some("spec.rules[0].when[0]"),
            in_shop(AUTHORIZATION_POLICY, "keyless"),
            r#"
spec:
  rules:
  - when:
    - values: ["x"]  # <- here
"#
        ),
        bad!(
            "unknown mTLS mode",
            SchemaViolation,
            Some("spec.mtls.mode"),
            in_shop(PEER_AUTHENTICATION, "default"),
            r#"
spec:
  mtls:
    mode: STRICTER  # <- here
"#
        ),
        bad!(
            "port-level mode misspelled",
            SchemaViolation,
            Some("spec.portLevelMtls.8080.mode"),
            in_shop(PEER_AUTHENTICATION, "ports"),
            r#"
spec:
  selector:
    matchLabels: {app: a}
  portLevelMtls:
    8080:
      mode: strict  # <- here
"#
        ),
        bad!(
            "JWT rule without issuer",
            SchemaViolation,
            Some("spec.jwtRules[0]"),
            in_shop(REQUEST_AUTHENTICATION, "no-issuer"),
            r#"
spec:
  jwtRules:
  - jwksUri: https://idp.example/keys  # <- here
"#
        ),
        bad!(
            "unknown ServiceEntry resolution",
            SchemaViolation,
            Some("spec.resolution"),
            in_shop(SERVICE_ENTRY, "magic"),
            r#"
spec:
  hosts: [magic.example]
  resolution: MAGIC  # <- here
"#
        ),
        bad!(
            "negative ServiceEntry port",
            SchemaViolation,
            Some("spec.ports[0].number"),
            in_shop(SERVICE_ENTRY, "negative"),
            r#"
spec:
  hosts: [neg.example]
  ports:
  - name: http
    number: -80  # <- here
"#
        ),
        bad!(
            "WorkloadEntry port is not a number",
            SchemaViolation,
            Some("spec.ports.http"),
            in_shop(WORKLOAD_ENTRY, "vm"),
            r#"
spec:
  address: 10.0.0.1
  ports:
    http: eighty  # <- here
"#
        ),
        // A missing field is reported on the last key read in the mapping that lacks it.
        bad!(
            "Gateway without a class",
            SchemaViolation,
            Some("spec"),
            in_shop(GATEWAY, "classless"),
            r#"
spec:
  listeners:  # <- here
  - name: mesh
    port: 15008
    protocol: HBONE
"#
        ),
        bad!(
            "listener without a protocol",
            SchemaViolation,
            Some("spec.listeners[0]"),
            in_shop(GATEWAY, "waypoint"),
            r#"
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008  # <- here
"#
        ),
        bad!(
            "unknown path match type",
            SchemaViolation,
            Some("spec.rules[0].matches[0].path.type"),
            in_shop(HTTP_ROUTE, "prefix"),
            r#"
spec:
  rules:
  - matches:
    - path:
        type: Prefix  # <- here
        value: /api
"#
        ),
        bad!(
            "lower-case method",
            SchemaViolation,
            Some("spec.rules[0].matches[0].method"),
            in_shop(HTTP_ROUTE, "method"),
            r#"
spec:
  rules:
  - matches:
    - method: get  # <- here
"#
        ),
        bad!(
            "Service port is not a number",
            SchemaViolation,
            Some("spec.ports[0].port"),
            in_shop(SERVICE, "web"),
            r#"
spec:
  ports:
  - name: http
    port: eighty  # <- here
"#
        ),
        bad!(
            "labels are a list",
            SchemaViolation,
            Some("metadata.labels"),
            in_shop(SERVICE_ACCOUNT, "listy"),
            r#"
  labels:
  - app  # <- here
"#
        ),
    ]
}
