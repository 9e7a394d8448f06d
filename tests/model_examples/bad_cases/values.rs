//! Well-typed but invalid values: `InvalidValue`, kind by kind, then names and namespaces.

use super::{
    AUTHORIZATION_POLICY, Bad, ENDPOINT_SLICE, GATEWAY, HTTP_ROUTE, PEER_AUTHENTICATION, POD, REQUEST_AUTHENTICATION,
    SERVICE, SERVICE_ENTRY, WORKLOAD_ENTRY, in_shop,
};

pub fn cases() -> Vec<Bad> {
    vec![
        bad!(
            "bad CIDR in a block list",
            InvalidValue,
            Some("spec.rules[0].from[0].source.ipBlocks[1]"),
            in_shop(AUTHORIZATION_POLICY, "bad-cidr"),
            r#"
spec:
  action: DENY
  rules:
  - from:
    - source:
        ipBlocks:
        - 10.0.0.0/8
        - 10.0.0.0/33  # <- here
"#
        ),
        bad!(
            "bad address in a flow list, second rule",
            InvalidValue,
            Some("spec.rules[1].from[1].source.remoteIpBlocks[1]"),
            in_shop(AUTHORIZATION_POLICY, "bad-remote"),
            r#"
spec:
  rules:
  - from:
    - source:
        remoteIpBlocks: ["10.0.0.1"]
  - from:
    - source:
        namespaces: ["x"]
    - source:
        remoteIpBlocks: ["192.0.2.1", "192.0.2.256"]  # <- here
    to:
    - operation:
        methods: ["GET"]
"#
        ),
        bad!(
            "operation port is a name",
            InvalidValue,
            Some("spec.rules[0].to[0].operation.ports[0]"),
            in_shop(AUTHORIZATION_POLICY, "named-port"),
            r#"
spec:
  rules:
  - to:
    - operation:
        ports:
        - http  # <- here
"#
        ),
        bad!(
            "notPorts out of range",
            InvalidValue,
            Some("spec.rules[0].to[1].operation.notPorts[0]"),
            in_shop(AUTHORIZATION_POLICY, "big-port"),
            r#"
spec:
  rules:
  - to:
    - operation:
        ports: ["80"]
    - operation:
        notPorts:
        - "65536"  # <- here
"#
        ),
        bad!(
            "condition without values",
            InvalidValue,
            Some("spec.rules[0].when[0]"),
            in_shop(AUTHORIZATION_POLICY, "valueless"),
            r#"
spec:
  rules:
  - to:
    - operation:
        methods: ["GET"]
    when:
    - key: request.headers[x-tenant]  # <- here
"#
        ),
        bad!(
            "CUSTOM without a provider",
            InvalidValue,
            Some("spec.provider"),
            in_shop(AUTHORIZATION_POLICY, "custom"),
            r#"
spec:  # <- here
  action: CUSTOM
  rules:
  - {}
"#
        ),
        bad!(
            "empty principal",
            InvalidValue,
            Some("spec.rules[0].from[0].source.principals"),
            in_shop(AUTHORIZATION_POLICY, "empty-principal"),
            r#"
spec:
  rules:
  - from:
    - source:
        principals: [""]  # <- here
"#
        ),
        bad!(
            "port-level port out of range",
            InvalidValue,
            Some("spec.portLevelMtls.99999"),
            in_shop(PEER_AUTHENTICATION, "ports"),
            r#"
spec:
  selector:
    matchLabels:
      app: a
  portLevelMtls:
    8080:
      mode: STRICT
    99999:  # <- here
      mode: DISABLE
"#
        ),
        bad!(
            "port-level key is not a number",
            InvalidValue,
            Some("spec.portLevelMtls.http"),
            in_shop(PEER_AUTHENTICATION, "ports"),
            r#"
spec:
  selector:
    matchLabels:
      app: a
  portLevelMtls:
    http:  # <- here
      mode: DISABLE
"#
        ),
        bad!(
            "jwksUri is not http(s)",
            InvalidValue,
            Some("spec.jwtRules[1].jwksUri"),
            in_shop(REQUEST_AUTHENTICATION, "ftp"),
            r#"
spec:
  jwtRules:
  - issuer: a
    jwksUri: https://a.example/keys
  - issuer: b
    jwksUri: ftp://b.example/keys  # <- here
"#
        ),
        bad!(
            "ServiceEntry port zero",
            InvalidValue,
            Some("spec.ports[0].number"),
            in_shop(SERVICE_ENTRY, "zero"),
            r#"
spec:
  hosts: [zero.example]
  ports:
  - name: http
    number: 0  # <- here
"#
        ),
        bad!(
            "ServiceEntry bad endpoint address",
            InvalidValue,
            Some("spec.endpoints[1].address"),
            in_shop(SERVICE_ENTRY, "static"),
            r#"
spec:
  hosts: [db.example]
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
  - address: 10.0.0.300  # <- here
"#
        ),
        bad!(
            "ServiceEntry bad address",
            InvalidValue,
            Some("spec.addresses[0]"),
            in_shop(SERVICE_ENTRY, "vip"),
            r#"
spec:
  hosts: [vip.example]
  addresses:
  - 240.0.0.0/40  # <- here
"#
        ),
        bad!(
            "ServiceEntry without hosts",
            InvalidValue,
            Some("spec.hosts"),
            in_shop(SERVICE_ENTRY, "hostless"),
            r#"
spec:
  hosts: []  # <- here
"#
        ),
        bad!(
            "STATIC without endpoints",
            InvalidValue,
            Some("spec.endpoints"),
            in_shop(SERVICE_ENTRY, "nowhere"),
            r#"
spec:  # <- here
  hosts: [nowhere.example]
  resolution: STATIC
"#
        ),
        bad!(
            "WorkloadEntry port out of range",
            InvalidValue,
            Some("spec.ports.http"),
            in_shop(WORKLOAD_ENTRY, "vm"),
            r#"
spec:
  address: 10.0.0.1
  ports:
    grpc: 9090
    http: 70000  # <- here
"#
        ),
        bad!(
            "WorkloadEntry bad IP",
            InvalidValue,
            Some("spec.address"),
            in_shop(WORKLOAD_ENTRY, "vm"),
            r#"
spec:
  address: 10.0.0.256  # <- here
"#
        ),
        bad!(
            "Gateway listener port out of range",
            InvalidValue,
            Some("spec.listeners[1].port"),
            in_shop(GATEWAY, "edge"),
            r#"
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
  - name: alt
    protocol: HTTP
    port: 70000  # <- here
"#
        ),
        bad!(
            "Gateway listener port zero",
            InvalidValue,
            Some("spec.listeners[0].port"),
            in_shop(GATEWAY, "edge"),
            r#"
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 0  # <- here
    protocol: HTTP
"#
        ),
        bad!(
            "HTTPRoute negative weight",
            InvalidValue,
            Some("spec.rules[0].backendRefs[1].weight"),
            in_shop(HTTP_ROUTE, "weights"),
            r#"
spec:
  rules:
  - backendRefs:
    - name: a
      port: 80
      weight: 1
    - name: b
      port: 80
      weight: -1  # <- here
"#
        ),
        bad!(
            "HTTPRoute path without a slash",
            InvalidValue,
            Some("spec.rules[1].matches[0].path"),
            in_shop(HTTP_ROUTE, "paths"),
            r#"
spec:
  rules:
  - matches:
    - path: {type: Exact, value: /ok}
  - matches:
    - path:  # <- here
        type: PathPrefix
        value: api
"#
        ),
        bad!(
            "HTTPRoute parent port zero",
            InvalidValue,
            Some("spec.parentRefs[0].port"),
            in_shop(HTTP_ROUTE, "parent"),
            r#"
spec:
  parentRefs:
  - kind: Service
    group: ""
    name: web
    port: 0  # <- here
"#
        ),
        bad!(
            "Service port out of range",
            InvalidValue,
            Some("spec.ports[0].port"),
            in_shop(SERVICE, "web"),
            r#"
spec:
  ports:
  - name: http
    port: 70000  # <- here
    targetPort: http
"#
        ),
        bad!(
            "Service targetPort is not a port name",
            InvalidValue,
            Some("spec.ports[1].targetPort"),
            in_shop(SERVICE, "web"),
            r#"
spec:
  ports:
  - name: http
    port: 80
  - name: admin
    port: 8081
    targetPort: Admin_Port  # <- here
"#
        ),
        bad!(
            "Service unknown type",
            InvalidValue,
            Some("spec.type"),
            in_shop(SERVICE, "web"),
            r#"
spec:
  type: Internal  # <- here
"#
        ),
        bad!(
            "Service bad clusterIP",
            InvalidValue,
            Some("spec.clusterIP"),
            in_shop(SERVICE, "web"),
            r#"
spec:
  clusterIP: 10.96.0.999  # <- here
"#
        ),
        bad!(
            "Service name with a dot",
            InvalidValue,
            Some("metadata.name"),
            r#"
apiVersion: v1
kind: Service
metadata:
  name: web.v2  # <- here
  namespace: shop
"#
        ),
        bad!(
            "Pod container port zero",
            InvalidValue,
            Some("spec.containers[0].ports[0].containerPort"),
            in_shop(POD, "app"),
            r#"
spec:
  containers:
  - name: app
    ports:
    - containerPort: 0  # <- here
"#
        ),
        bad!(
            "Pod port name too long",
            InvalidValue,
            Some("spec.containers[1].ports[1].name"),
            in_shop(POD, "app"),
            r#"
spec:
  containers:
  - name: app
  - name: sidecar
    ports:
    - containerPort: 80
      name: http
    - containerPort: 81
      name: this-name-is-too-long  # <- here
"#
        ),
        bad!(
            "Pod port protocol",
            InvalidValue,
            Some("spec.containers[0].ports[0].protocol"),
            in_shop(POD, "app"),
            r#"
spec:
  containers:
  - name: app
    ports:
    - containerPort: 80
      protocol: HTTP  # <- here
"#
        ),
        bad!(
            "Pod bad podIP in status",
            InvalidValue,
            Some("status.podIPs[1].ip"),
            in_shop(POD, "app"),
            r#"
spec:
  containers:
  - name: app
status:
  podIPs:
  - ip: 10.1.1.1
  - ip: not-an-ip  # <- here
"#
        ),
        bad!(
            "EndpointSlice bad address",
            InvalidValue,
            Some("endpoints[0].addresses[1]"),
            in_shop(ENDPOINT_SLICE, "web-abc"),
            r#"
addressType: IPv4
endpoints:
- addresses:
  - 10.1.1.1
  - 10.1.1  # <- here
"#
        ),
        bad!(
            "EndpointSlice unknown addressType",
            InvalidValue,
            Some("addressType"),
            in_shop(ENDPOINT_SLICE, "web-abc"),
            r#"
addressType: IPv5  # <- here
endpoints: []
"#
        ),
        bad!(
            "EndpointSlice port out of range",
            InvalidValue,
            Some("ports[0].port"),
            in_shop(ENDPOINT_SLICE, "web-abc"),
            r#"
addressType: FQDN
endpoints:
- addresses: [web.shop.example]
ports:
- name: http
  port: 65536  # <- here
"#
        ),
        bad!(
            "invalid object name",
            InvalidValue,
            Some("metadata.name"),
            r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: Deny_All  # <- here
  namespace: shop
spec: {}
"#
        ),
        bad!(
            "missing object name",
            InvalidValue,
            Some("metadata.name"),
            r#"
apiVersion: v1
kind: ServiceAccount
metadata:  # <- here
  namespace: shop
"#
        ),
        // An absent field is located at its parent, not at a same-named key in another block.
        bad!(
            "generateName instead of a name",
            InvalidValue,
            Some("metadata.name"),
            r#"
apiVersion: v1
kind: Pod
metadata:  # <- here
  generateName: web-
  namespace: shop
spec:
  containers:
  - name: web
"#
        ),
        bad!(
            "ServiceEntry hosts absent, endpoint label named hosts",
            InvalidValue,
            Some("spec.hosts"),
            in_shop(SERVICE_ENTRY, "hostless"),
            r#"
spec:  # <- here
  ports:
  - name: http
    number: 80
  endpoints:
  - address: 10.0.0.1
    labels:
      hosts: many
"#
        ),
        bad!(
            "invalid namespace name",
            InvalidValue,
            Some("metadata.namespace"),
            r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: Shop_Front  # <- here
"#
        ),
        bad!(
            "namespace on a cluster-scoped kind",
            InvalidValue,
            Some("metadata.namespace"),
            r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  namespace: default  # <- here
"#
        ),
    ]
}
