//! Small builders for test objects: `pod("app", "a").label("app", "web").ip("10.0.0.1")`.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Pod, PodIP, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::mesh::Labels;
use crate::model::security::{
    AuthorizationPolicySpec, MtlsMode, MutualTls, PeerAuthenticationSpec, PolicyTargetReference, Rule, RuleFrom,
    WorkloadSelector,
};
use crate::model::{AuthorizationPolicy, PeerAuthentication, Resource};

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: namespace.map(str::to_string), ..Default::default() }
}

fn insert(map: &mut Option<Labels>, key: &str, value: &str) {
    map.get_or_insert_with(Default::default).insert(key.to_string(), value.to_string());
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub struct NamespaceBuilder(Namespace);

pub fn namespace(name: &str) -> NamespaceBuilder {
    NamespaceBuilder(Namespace { metadata: meta(None, name), ..Default::default() })
}

/// A namespace enrolled in ambient mode.
pub fn ambient_namespace(name: &str) -> NamespaceBuilder {
    namespace(name).label("istio.io/dataplane-mode", "ambient")
}

impl NamespaceBuilder {
    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }
}

impl From<NamespaceBuilder> for Resource {
    fn from(b: NamespaceBuilder) -> Resource {
        Resource::Namespace(b.0)
    }
}

pub struct PodBuilder(Pod);

/// A running pod with one container, no IP and no node yet.
pub fn pod(namespace: &str, name: &str) -> PodBuilder {
    let mut metadata = meta(Some(namespace), name);
    metadata.uid = Some(format!("uid-{namespace}-{name}"));
    PodBuilder(Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![Container { name: "app".into(), ..Default::default() }],
            ..Default::default()
        }),
        status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
    })
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    fn status(&mut self) -> &mut PodStatus {
        self.0.status.get_or_insert_with(Default::default)
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.annotations, key, value);
        self
    }

    /// Sets `status.podIP` only.
    pub fn ip(mut self, ip: &str) -> Self {
        self.status().pod_ip = Some(ip.to_string());
        self
    }

    /// Sets `status.podIPs` (and `podIP` to the first, as the kubelet does).
    pub fn ips(mut self, ips: &[&str]) -> Self {
        let status = self.status();
        status.pod_ip = ips.first().map(|ip| ip.to_string());
        status.pod_ips = Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect());
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_string());
        self
    }

    pub fn service_account(mut self, name: &str) -> Self {
        self.spec().service_account_name = Some(name.to_string());
        self
    }

    /// Adds a named TCP container port.
    pub fn port(self, name: &str, number: i32) -> Self {
        self.port_with_protocol(name, number, "TCP")
    }

    pub fn port_with_protocol(mut self, name: &str, number: i32, protocol: &str) -> Self {
        let port = ContainerPort {
            name: Some(name.to_string()),
            container_port: number,
            protocol: Some(protocol.to_string()),
            ..Default::default()
        };
        self.spec().containers[0].ports.get_or_insert_with(Vec::new).push(port);
        self
    }

    pub fn host_network(mut self) -> Self {
        self.spec().host_network = Some(true);
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.status().phase = Some(phase.to_string());
        self
    }
}

impl From<PodBuilder> for Resource {
    fn from(b: PodBuilder) -> Resource {
        Resource::Pod(b.0)
    }
}

pub struct ServiceBuilder(Service);

/// A service with no selector, no ports and no cluster IP yet.
pub fn service(namespace: &str, name: &str) -> ServiceBuilder {
    ServiceBuilder(Service { metadata: meta(Some(namespace), name), spec: Some(ServiceSpec::default()), status: None })
}

impl ServiceBuilder {
    fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.annotations, key, value);
        self
    }

    pub fn selector(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.spec().selector, key, value);
        self
    }

    pub fn cluster_ip(mut self, ip: &str) -> Self {
        self.spec().cluster_ip = Some(ip.to_string());
        self
    }

    /// A TCP port with no targetPort (it targets the same number).
    pub fn port(self, port: i32) -> Self {
        self.port_with(port, "TCP", None)
    }

    pub fn port_to(self, port: i32, target: i32) -> Self {
        self.port_with(port, "TCP", Some(IntOrString::Int(target)))
    }

    pub fn port_named(self, port: i32, target: &str) -> Self {
        self.port_with(port, "TCP", Some(IntOrString::String(target.to_string())))
    }

    pub fn port_with(mut self, port: i32, protocol: &str, target: Option<IntOrString>) -> Self {
        let port = ServicePort {
            name: Some(format!("{}-{port}", protocol.to_lowercase())),
            port,
            protocol: Some(protocol.to_string()),
            target_port: target,
            ..Default::default()
        };
        self.spec().ports.get_or_insert_with(Vec::new).push(port);
        self
    }
}

impl From<ServiceBuilder> for Resource {
    fn from(b: ServiceBuilder) -> Resource {
        Resource::Service(b.0)
    }
}

pub struct AuthzBuilder(AuthorizationPolicy);

/// An ALLOW policy with no selector and no rules.
pub fn authz(namespace: &str, name: &str) -> AuthzBuilder {
    AuthzBuilder(AuthorizationPolicy {
        metadata: meta(Some(namespace), name),
        spec: AuthorizationPolicySpec::default(),
    })
}

impl AuthzBuilder {
    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.0.metadata.labels, key, value);
        self
    }

    pub fn selector(mut self, key: &str, value: &str) -> Self {
        let selector = self.0.spec.selector.get_or_insert_with(WorkloadSelector::default);
        selector.match_labels.insert(key.to_string(), value.to_string());
        self
    }

    /// An explicit `selector: {matchLabels: {}}`.
    pub fn empty_selector(mut self) -> Self {
        self.0.spec.selector = Some(WorkloadSelector::default());
        self
    }

    pub fn target(mut self, group: &str, kind: &str, name: &str) -> Self {
        let target = PolicyTargetReference {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: None,
        };
        self.0.spec.target_refs.push(target);
        self
    }

    /// Adds a rule allowing `principal`.
    pub fn allow_from(mut self, principal: &str) -> Self {
        let mut from = RuleFrom::default();
        from.source.principals.push(principal.to_string());
        self.0.spec.rules.get_or_insert_with(Vec::new).push(Rule { from: vec![from], ..Default::default() });
        self
    }
}

impl From<AuthzBuilder> for Resource {
    fn from(b: AuthzBuilder) -> Resource {
        Resource::AuthorizationPolicy(b.0)
    }
}

pub struct PeerAuthBuilder(PeerAuthentication);

/// A STRICT PeerAuthentication with no selector.
pub fn peer_auth(namespace: &str, name: &str) -> PeerAuthBuilder {
    let spec = PeerAuthenticationSpec { mtls: Some(MutualTls { mode: MtlsMode::Strict }), ..Default::default() };
    PeerAuthBuilder(PeerAuthentication { metadata: meta(Some(namespace), name), spec })
}

impl PeerAuthBuilder {
    pub fn selector(mut self, key: &str, value: &str) -> Self {
        let selector = self.0.spec.selector.get_or_insert_with(WorkloadSelector::default);
        selector.match_labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn mode(mut self, mode: MtlsMode) -> Self {
        self.0.spec.mtls = Some(MutualTls { mode });
        self
    }
}

impl From<PeerAuthBuilder> for Resource {
    fn from(b: PeerAuthBuilder) -> Resource {
        Resource::PeerAuthentication(b.0)
    }
}
