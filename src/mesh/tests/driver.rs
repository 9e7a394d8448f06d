//! The async side: a [`Mesh`] following a store.

use std::time::Duration;

use tokio::sync::broadcast;

use super::build::{ambient_namespace, pod};
use super::summarize;
use crate::config::{Store, Write};
use crate::mesh::{Mesh, MeshBatch, MeshConfig, WorkloadKey};

async fn next_batch(rx: &mut broadcast::Receiver<std::sync::Arc<MeshBatch>>) -> (u64, Vec<String>) {
    let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a batch arrives in time")
        .expect("the mesh is still publishing");
    (batch.revision, summarize(&batch.events))
}

#[tokio::test]
async fn follows_the_store_and_publishes_batches() {
    let store = Store::new();
    store.apply([Write::Put(ambient_namespace("app").into()), Write::Put(pod("app", "a").into())]);
    let mesh = Mesh::new(MeshConfig::default());
    let (revision, mut rx) = mesh.subscribe(|index| index.revision());
    assert_eq!(revision, 0, "nothing loaded before following");

    let follower = tokio::spawn({
        let mesh = mesh.clone();
        let subscription = store.subscribe();
        async move { mesh.follow(subscription).await }
    });
    assert_eq!(next_batch(&mut rx).await, (1, vec!["+workload app/a".to_string()]));

    // A write that derives nothing publishes nothing; the next real change comes through alone.
    store.apply([Write::Put(ambient_namespace("app").label("team", "blue").into())]);
    store.apply([Write::Put(pod("app", "a").ip("10.0.0.1").into())]);
    assert_eq!(next_batch(&mut rx).await, (3, vec!["+workload app/a".to_string()]));
    let addressable = mesh.read(|index| index.workload(&WorkloadKey::new("app", "a")).map(|w| w.is_addressable()));
    assert_eq!(addressable, Some(true));

    // A late subscriber reads the current state and then only what follows it.
    let (count, mut late) = mesh.subscribe(|index| index.workloads().count());
    assert_eq!(count, 1);
    store.apply([Write::Put(pod("app", "b").into())]);
    assert_eq!(next_batch(&mut late).await, (4, vec!["+workload app/b".to_string()]));
    assert_eq!(next_batch(&mut rx).await, (4, vec!["+workload app/b".to_string()]));

    follower.abort();
}
