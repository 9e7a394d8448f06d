//! `ambient controlplane` end to end on a files config: the xDS stream as a node proxy sees it
//! (full state, deltas on edits, removals, on-demand, NACK, reconnect, slow clients), the CA
//! through the same TLS endpoint, and the debug endpoint.

#[path = "controlplane/support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ambient::xds::client::Subscription;
use ambient::xds::proto::discovery::DeltaDiscoveryRequest;
use ambient::xds::proto::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use ambient::xds::proto::workload::{Address, address};
use ambient::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use futures::StreamExt;
use support::*;

const STATIC_STRICT: &str = "istio-system/istio_converted_static_strict";

#[tokio::test]
async fn full_state_on_connect() {
    let f = Fixture::start(&[("mesh.yaml", MESH), ("policy.yaml", POLICY)]).await;
    let client = f.client("node-a", wildcard_both());
    wait_for(&client, "the full state", |c| {
        c.get(ADDRESS_TYPE, WEB_UID).is_some() && c.get(AUTHORIZATION_TYPE, "shop/allow-shop").is_some()
    })
    .await;
    assert_eq!(names(&client, ADDRESS_TYPE), vec![WEB_UID, WEB_SERVICE]);
    assert_eq!(names(&client, AUTHORIZATION_TYPE), vec![STATIC_STRICT, "shop/allow-shop"]);
    let web: Address = client.get(ADDRESS_TYPE, WEB_UID).unwrap().decode().unwrap();
    let Some(address::Type::Workload(web)) = web.r#type else { panic!("web-1 is not a workload") };
    assert_eq!(web.tunnel_protocol, 1, "enrolled: HBONE");
    assert_eq!(web.services["shop/web.shop.svc.cluster.local"].ports[0].target_port, 8080);
}

#[tokio::test]
async fn a_file_edit_sends_only_the_delta_and_a_delete_sends_removals() {
    let f = Fixture::start(&[("mesh.yaml", MESH), ("policy.yaml", POLICY)]).await;
    let recorder = Arc::new(Recorder::default());
    let client =
        f.client("node-a", vec![recorded(ADDRESS_TYPE, &recorder), Subscription::wildcard(AUTHORIZATION_TYPE)]);
    wait_for(&client, "the full state", |c| c.get(ADDRESS_TYPE, WEB_SERVICE).is_some()).await;
    recorder.take();

    // A second pod: only it is sent (the service and web-1 are unchanged).
    let second = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: shop, labels: {app: web}}\n\
                  spec: {serviceAccountName: web, nodeName: node-b, containers: [{name: web, image: web}]}\n\
                  status: {podIP: 10.0.0.6}\n";
    f.write("second.yaml", second);
    wait_for(&client, "web-2", |c| c.get(ADDRESS_TYPE, "Kubernetes//Pod/shop/web-2").is_some()).await;
    let (upserts, removals) = recorder.take();
    assert_eq!(upserts, vec!["Kubernetes//Pod/shop/web-2"], "only the new pod is pushed");
    assert!(removals.is_empty());

    // Deleting the file removes the pod; deleting the policy file removes the policy.
    std::fs::remove_file(f.path("second.yaml")).unwrap();
    std::fs::remove_file(f.path("policy.yaml")).unwrap();
    wait_for(&client, "the removals", |c| {
        c.get(ADDRESS_TYPE, "Kubernetes//Pod/shop/web-2").is_none()
            && c.get(AUTHORIZATION_TYPE, "shop/allow-shop").is_none()
    })
    .await;
    let (_, removals) = recorder.take();
    assert_eq!(removals, vec!["Kubernetes//Pod/shop/web-2"]);
    assert!(client.get(ADDRESS_TYPE, WEB_UID).is_some(), "the rest stays");
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_state() {
    let f = Fixture::start(&[("mesh.yaml", MESH)]).await;
    let client = f.client("node-a", wildcard_both());
    wait_for(&client, "the full state", |c| c.get(ADDRESS_TYPE, WEB_UID).is_some()).await;
    f.write("mesh.yaml", &MESH.replace("podIP: 10.0.0.5", "podIP: [oops"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(client.get(ADDRESS_TYPE, WEB_UID).is_some(), "the pod's last good version is still served");
    assert!(client.get(ADDRESS_TYPE, WEB_SERVICE).is_some());
}

#[tokio::test]
async fn on_demand_by_address_and_by_name() {
    let f = Fixture::start(&[("mesh.yaml", MESH)]).await;
    let client =
        f.client("node-a", vec![Subscription::on_demand(ADDRESS_TYPE), Subscription::wildcard(AUTHORIZATION_TYPE)]);
    let by_ip = tokio::time::timeout(WAIT, client.demand(ADDRESS_TYPE, "/10.0.0.5")).await.unwrap().unwrap();
    assert_eq!(by_ip.expect("the pod's IP resolves").name, WEB_UID);
    let by_vip = tokio::time::timeout(WAIT, client.demand(ADDRESS_TYPE, "/10.96.0.10")).await.unwrap().unwrap();
    assert_eq!(by_vip.expect("the service VIP resolves").name, WEB_SERVICE);
    let missing = tokio::time::timeout(WAIT, client.demand(ADDRESS_TYPE, "/10.9.9.9")).await.unwrap().unwrap();
    assert!(missing.is_none(), "an unknown address is answered as absent");
    assert_eq!(names(&client, ADDRESS_TYPE), vec![WEB_UID, WEB_SERVICE], "only what was asked for");

    // A demanded resource keeps receiving updates.
    f.write("mesh.yaml", &MESH.replace("{app: web}}\nspec", "{app: web, version: v9}}\nspec"));
    wait_for(&client, "the update of a demanded workload", |c| {
        c.get(ADDRESS_TYPE, WEB_UID)
            .and_then(|r| r.decode::<Address>().ok())
            .is_some_and(|a| matches!(a.r#type, Some(address::Type::Workload(w)) if w.canonical_revision == "v9"))
    })
    .await;
}

#[tokio::test]
async fn a_nack_is_recorded_and_not_answered_with_a_resend() {
    let f = Fixture::start(&[("mesh.yaml", MESH), ("policy.yaml", POLICY)]).await;
    let recorder = Arc::new(Recorder::default());
    *recorder.reject.lock().unwrap() = Some("shop/allow-shop".to_string());
    let client =
        f.client("node-a", vec![Subscription::wildcard(ADDRESS_TYPE), recorded(AUTHORIZATION_TYPE, &recorder)]);
    wait_for(&client, "the NACK", |c| c.status().borrow().nacks >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (upserts, _) = recorder.take();
    assert_eq!(upserts.iter().filter(|n| *n == "shop/allow-shop").count(), 1, "sent once, not resent after the NACK");

    let connections = f.controlplane.server.connections();
    let status = serde_json::to_value(&connections).unwrap();
    let text = status.to_string();
    assert!(text.contains("rejected by the test"), "syncz shows the client's error: {text}");
    let (_, metrics) = get(f.controlplane.debug_address, "/metrics").await;
    let nacks =
        metrics.lines().find(|l| l.starts_with("ambient_controlplane_xds_nacks_total{") && l.contains("Authorization"));
    assert!(nacks.is_some_and(|l| l.ends_with(" 1")), "NACK counted: {nacks:?}");

    // A change of the rejected policy is sent again.
    f.write("policy.yaml", &POLICY.replace("namespaces: [shop]", "namespaces: [shop, other]"));
    wait_for(&client, "the changed policy", |_| {
        recorder.upserts.lock().unwrap().iter().any(|n| n == "shop/allow-shop")
    })
    .await;
}

#[tokio::test]
async fn a_reconnecting_client_gets_a_consistent_state() {
    let f = Fixture::start(&[("mesh.yaml", MESH), ("policy.yaml", POLICY)]).await;
    let address = f.controlplane.xds_address;
    let client = f.client("node-a", wildcard_both());
    wait_for(&client, "the full state", |c| c.get(AUTHORIZATION_TYPE, "shop/allow-shop").is_some()).await;
    let streams = client.status().borrow().streams;

    // The control plane goes away; while it is down the policy is deleted and a pod added.
    let Fixture { dir, controlplane } = f;
    let root = controlplane.root_cert_pem.clone();
    controlplane.shutdown().await;
    std::fs::remove_file(dir.path().join("config/policy.yaml")).unwrap();
    std::fs::write(
        dir.path().join("config/new.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: new, namespace: shop}\nspec: {nodeName: node-a, containers: [{name: c, image: c}]}\nstatus: {podIP: 10.0.0.9}\n",
    )
    .unwrap();
    let restarted = Fixture::start_in(dir.path(), address).await;
    wait_for(&client, "the state after reconnecting", |c| {
        c.status().borrow().streams > streams
            && c.get(AUTHORIZATION_TYPE, "shop/allow-shop").is_none()
            && c.get(ADDRESS_TYPE, "Kubernetes//Pod/shop/new").is_some()
    })
    .await;
    assert_eq!(names(&client, ADDRESS_TYPE), vec!["Kubernetes//Pod/shop/new", WEB_UID, WEB_SERVICE]);
    assert_eq!(restarted.root_cert_pem, root, "the CA root is kept across restarts");
}

#[tokio::test]
async fn a_stuck_client_does_not_delay_others() {
    let f = Fixture::start(&[("mesh.yaml", MESH)]).await;
    // A client that subscribes and then never reads a response.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", f.controlplane.xds_address.port()))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&f.controlplane.root_cert_pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
    let subscribe = [ADDRESS_TYPE, AUTHORIZATION_TYPE]
        .map(|type_url| DeltaDiscoveryRequest { type_url: type_url.to_string(), ..Default::default() });
    // Subscribes, then neither sends nor reads anything more.
    let requests = futures::stream::iter(subscribe).chain(futures::stream::pending());
    let mut request = tonic::Request::new(requests);
    request.metadata_mut().insert("authorization", "Bearer ztunnel-b".parse().unwrap());
    let stuck = AggregatedDiscoveryServiceClient::new(channel).delta_aggregated_resources(request).await.unwrap();

    let fast = f.client("node-a", wildcard_both());
    wait_for(&fast, "the full state", |c| c.get(ADDRESS_TYPE, WEB_UID).is_some()).await;
    // Many edits, each a new pod with a large label so the stuck client's window fills up.
    let padding = "x".repeat(8000);
    let started = Instant::now();
    for i in 0..30 {
        let pods: String = (0..=i)
            .map(|n| format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{n}, namespace: shop, labels: {{pad: v{i}, filler: {padding}}}}}\nspec: {{nodeName: node-a, containers: [{{name: c, image: c}}]}}\nstatus: {{podIP: 10.1.0.{n}}}\n"))
            .collect();
        f.write("many.yaml", &pods);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    wait_for(&fast, "the last edit", |c| c.get(ADDRESS_TYPE, "Kubernetes//Pod/shop/p29").is_some()).await;
    assert!(started.elapsed() < Duration::from_secs(8), "the fast client kept up: {:?}", started.elapsed());
    let connections = f.controlplane.server.connections();
    assert_eq!(connections.len(), 2, "the stuck client is still connected");
    drop(stuck);
}

#[tokio::test]
async fn debug_endpoints() {
    let f = Fixture::start(&[("mesh.yaml", MESH), ("policy.yaml", POLICY)]).await;
    let client = f.client("node-a", wildcard_both());
    wait_for(&client, "the full state", |c| c.get(AUTHORIZATION_TYPE, "shop/allow-shop").is_some()).await;
    let debug = f.controlplane.debug_address;
    assert_eq!(get(debug, "/healthz/ready").await.0, 200);

    let (status, syncz) = get(debug, "/debug/syncz").await;
    assert_eq!(status, 200);
    let syncz: serde_json::Value = serde_json::from_str(&syncz).unwrap();
    let text = syncz.to_string();
    assert!(text.contains("ztunnel~node-a") && text.contains("node-a"), "syncz lists the client: {text}");
    assert!(text.contains("last_acked"), "syncz shows acks: {text}");

    let (_, dump) = get(debug, "/debug/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let addresses = &dump["resources"][ADDRESS_TYPE];
    let web = addresses.as_array().unwrap().iter().find(|r| r["name"] == WEB_UID).expect("web-1 in config_dump");
    assert_eq!(web["resource"]["type"]["Workload"]["addresses"][0], "10.0.0.5", "{web}");
    assert_eq!(web["resource"]["type"]["Workload"]["tunnel_protocol"], "HBONE");

    let (_, registry) = get(debug, "/debug/registryz").await;
    let registry: serde_json::Value = serde_json::from_str(&registry).unwrap();
    assert_eq!(registry["workloads"][0]["identity"], "spiffe://cluster.local/ns/shop/sa/web");

    let (_, metrics) = get(debug, "/metrics").await;
    for name in [
        "ambient_controlplane_xds_connected_clients",
        "ambient_controlplane_xds_pushes_total",
        "ambient_controlplane_xds_push_latency_seconds",
    ] {
        assert!(metrics.contains(name), "metric {name} missing from:\n{metrics}");
    }
    assert_eq!(get(debug, "/nope").await.0, 404);
}

/// The CA on the xDS port, as Istio's ztunnel calls it: a node proxy asks for the identity of a
/// pod on its node (granted) and of a pod elsewhere (refused).
#[tokio::test]
async fn the_ca_shares_the_xds_endpoint_and_checks_the_node() {
    use ambient::xds::proto::ca::IstioCertificateRequest;
    use ambient::xds::proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;
    use ambient::xds::proto::google::protobuf::{Struct, Value, value::Kind};

    let f = Fixture::start(&[("mesh.yaml", MESH)]).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", f.controlplane.xds_address.port()))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&f.controlplane.root_cert_pem)),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
    let client = IstioCertificateServiceClient::new(channel);
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let request = |token: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![rcgen::SanType::URI(web.try_into().unwrap())];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let metadata = Struct {
            fields: [("ImpersonatedIdentity".to_string(), Value { kind: Some(Kind::StringValue(web.to_string())) })]
                .into(),
        };
        let mut request =
            tonic::Request::new(IstioCertificateRequest { csr, validity_duration: 0, metadata: Some(metadata) });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let chain = client
        .clone()
        .create_certificate(request("ztunnel-a"))
        .await
        .expect("node-a's ztunnel is granted")
        .into_inner();
    assert_eq!(chain.cert_chain.len(), 2, "leaf then root");
    assert_eq!(chain.cert_chain[1].trim(), f.controlplane.root_cert_pem.trim(), "the root comes last");
    let leaf = ambient::tls::pem::parse_certs("leaf", chain.cert_chain[0].as_bytes()).unwrap();
    assert_eq!(ambient::tls::spiffe_identity(&leaf[0]).unwrap().to_string(), web);

    let refused =
        client.clone().create_certificate(request("ztunnel-b")).await.expect_err("node-b's ztunnel is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let (_, metrics) = get(f.controlplane.debug_address, "/metrics").await;
    assert!(metrics.contains("ambient_controlplane_ca_certificates_refused_total{reason="), "{metrics}");
}
