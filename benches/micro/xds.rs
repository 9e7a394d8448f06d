//! 10,000 workloads applied from xDS, through the `ADDRESS_TYPE` handler of
//! `ProxyState::handlers` with encoded bodies: protobuf decoding, conversion to the typed
//! model and indexing, as the xDS client has them done for a response.
//!
//! The workloads are pods of 100 namespaces, each an endpoint of one of 1,000 services (10 pods
//! each), with an address, an identity and the canonical labels Istio sends.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use ambient::xds::client::{Changes, ClientResource, Handler};
use ambient::xds::proto::ADDRESS_TYPE;
use ambient::xds::proto::workload::{self as xds, Port, PortList, address};
use ambient::ztunnel::state::ProxyState;
use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use prost::Message;

const WORKLOADS: usize = 10_000;
const NAMESPACES: usize = 100;
const SERVICES: usize = 1_000;

/// Pod `i`, at revision `revision` (a different revision is a different resource body).
fn workload(i: usize, revision: &str) -> xds::Workload {
    let namespace = format!("ns-{:03}", i % NAMESPACES);
    let service = i % SERVICES;
    let app = format!("app-{service}");
    let service_key = format!("{namespace}/svc-{service}.{namespace}.svc.cluster.local");
    let ports = PortList { ports: vec![Port { service_port: 80, target_port: 8080, app_protocol: 0 }] };
    xds::Workload {
        uid: format!("Kubernetes//Pod/{namespace}/{app}-{i}"),
        name: format!("{app}-{i}"),
        namespace,
        addresses: vec![vec![10, 1 + (i / 65_536) as u8, (i / 256 % 256) as u8, (i % 256) as u8]],
        tunnel_protocol: xds::TunnelProtocol::Hbone as i32,
        trust_domain: "cluster.local".into(),
        service_account: app.clone(),
        node: format!("node-{}", i % 2),
        canonical_name: app.clone(),
        canonical_revision: revision.into(),
        workload_name: app,
        workload_type: xds::WorkloadType::Pod as i32,
        services: HashMap::from([(service_key, ports)]),
        cluster_id: "Kubernetes".into(),
        ..Default::default()
    }
}

/// Pod `i` as the xDS client holds it: named by uid, the encoded `Address` as body.
fn resource(i: usize, revision: &str) -> Arc<ClientResource> {
    let workload = workload(i, revision);
    let name = workload.uid.clone();
    let body = xds::Address { r#type: Some(address::Type::Workload(workload)) }.encode_to_vec();
    Arc::new(ClientResource { name, version: revision.into(), aliases: vec![], body: Bytes::from(body) })
}

fn apply(handler: &dyn Handler, upserts: &[Arc<ClientResource>]) {
    let changes = Changes { type_url: ADDRESS_TYPE, upserts, removals: &[] };
    handler.apply(&changes).expect("every workload is valid");
}

/// A state and its address handler, loaded with `resources`.
fn loaded(resources: &[Arc<ClientResource>]) -> (ProxyState, Arc<dyn Handler>) {
    let state = ProxyState::default();
    let (addresses, _policies) = state.handlers();
    apply(addresses.as_ref(), resources);
    (state, addresses)
}

pub fn bench(c: &mut Criterion) {
    let initial: Vec<_> = (0..WORKLOADS).map(|i| resource(i, "v1")).collect();
    let updated: Vec<_> = (0..WORKLOADS).map(|i| resource(i, "v2")).collect();

    let mut group = c.benchmark_group("xds_workloads");
    // A batch takes milliseconds: fewer, longer samples.
    group.sample_size(20);
    group.throughput(Throughput::Elements(WORKLOADS as u64));
    // The first response after connecting: everything is new.
    group.bench_function(BenchmarkId::from_parameter("batch_10k_into_empty"), |b| {
        b.iter_batched(
            || {
                let state = ProxyState::default();
                let (addresses, _policies) = state.handlers();
                (state, addresses)
            },
            |(state, addresses)| {
                apply(addresses.as_ref(), &initial);
                // Returned, so dropping 10,000 workloads is not measured.
                (state, addresses)
            },
            BatchSize::PerIteration,
        )
    });
    // A reconnect or a resync: every workload is sent again and replaces itself.
    {
        let (state, addresses) = loaded(&initial);
        let mut revisions = [&initial, &updated].into_iter().cycle();
        group.bench_function(BenchmarkId::from_parameter("batch_10k_replacing_10k"), |b| {
            b.iter(|| apply(addresses.as_ref(), revisions.next().expect("cycles")))
        });
        assert_eq!(state.snapshot()["workloads"].as_array().map(Vec::len), Some(WORKLOADS));
    }

    // Steady state: one pod changes among 10,000 (a response with one resource).
    group.sample_size(100);
    group.throughput(Throughput::Elements(1));
    let (state, addresses) = loaded(&initial);
    let mut updates = 0usize;
    group.bench_function(BenchmarkId::from_parameter("single_update_of_10k"), |b| {
        b.iter(|| {
            // Pod after pod, each alternating between its two revisions, so every update is a
            // change.
            let (pass, i) = (updates / WORKLOADS, updates % WORKLOADS);
            updates += 1;
            let revision = if pass % 2 == 0 { &updated } else { &initial };
            apply(addresses.as_ref(), black_box(&revision[i..=i]))
        })
    });
    drop(state);
    group.finish();
}
