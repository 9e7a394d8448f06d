//! Tests of the mesh index. Every change goes through a real [`Store`], and after every change
//! the incrementally kept index is compared with one rebuilt from the store's snapshot, so each
//! case also checks that incremental application and a reset agree.

mod build;
mod driver;
mod policies;
mod reset;
mod services;
mod workloads;

use std::sync::Arc;

use super::{MeshConfig, MeshEvent, MeshIndex, ServiceKey, Workload, WorkloadKey};
use crate::config::{Store, Write};
use crate::model::Resource;

/// One line per event: `+workload ns/name`, `-service ns/name`, `+policy Kind ns/name`...
fn summarize(events: &[MeshEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            MeshEvent::WorkloadUpserted(w) => format!("+workload {}", w.key),
            MeshEvent::WorkloadRemoved(key) => format!("-workload {key}"),
            MeshEvent::ServiceUpserted(s) => format!("+service {}", s.key),
            MeshEvent::ServiceRemoved(key) => format!("-service {key}"),
            MeshEvent::PolicyUpserted(p) => format!("+policy {}", p.key),
            MeshEvent::PolicyRemoved(key) => format!("-policy {key}"),
        })
        .collect()
}

/// A store and an index following it.
struct Harness {
    store: Store,
    index: MeshIndex,
}

impl Harness {
    fn new(objects: Vec<Resource>) -> Self {
        let store = Store::new();
        store.apply(objects.into_iter().map(Write::Put));
        let mut index = MeshIndex::new(MeshConfig::default());
        index.reset(&store.snapshot());
        Harness { store, index }
    }

    /// Applies `writes` as one store batch, folds the resulting change set into the index, checks
    /// the index, and returns its events summarized.
    fn write(&mut self, writes: Vec<Write>) -> Vec<String> {
        let Some(changes) = self.store.apply(writes) else {
            return Vec::new();
        };
        let events = self.index.apply(&changes);
        self.check(&events);
        summarize(&events)
    }

    fn put(&mut self, object: impl Into<Resource>) -> Vec<String> {
        self.write(vec![Write::Put(object.into())])
    }

    /// Removes the object `object` names (its content does not matter).
    fn delete(&mut self, object: impl Into<Resource>) -> Vec<String> {
        self.write(vec![Write::Remove(object.into().object_ref())])
    }

    /// The index agrees with a rebuild from the store, and every event matches the state.
    fn check(&self, events: &[MeshEvent]) {
        let mut rebuilt = MeshIndex::new(self.index.config().clone());
        rebuilt.reset(&self.store.snapshot());
        assert_eq!(self.index, rebuilt, "incremental index differs from a rebuild");
        for event in events {
            match event {
                MeshEvent::WorkloadUpserted(w) => assert_eq!(self.index.workload(&w.key), Some(w)),
                MeshEvent::WorkloadRemoved(key) => assert!(self.index.workload(key).is_none()),
                MeshEvent::ServiceUpserted(s) => assert_eq!(self.index.service(&s.key), Some(s)),
                MeshEvent::ServiceRemoved(key) => assert!(self.index.service(key).is_none()),
                MeshEvent::PolicyUpserted(p) => assert_eq!(self.index.policy(&p.key), Some(p)),
                MeshEvent::PolicyRemoved(key) => assert!(self.index.policy(key).is_none()),
            }
        }
    }
}

/// The workload of pod `namespace/name`; panics if there is none.
fn workload(index: &MeshIndex, namespace: &str, name: &str) -> Arc<Workload> {
    match index.workload(&WorkloadKey::new(namespace, name)) {
        Some(w) => w.clone(),
        None => panic!("no workload {namespace}/{name}"),
    }
}

/// Names of the workloads selected by service `namespace/name`.
fn members(index: &MeshIndex, namespace: &str, name: &str) -> Vec<String> {
    index.service_members(&ServiceKey::new(namespace, name)).map(|w| w.key.to_string()).collect()
}

/// One table row: start from `setup`, apply `change` as one batch, expect exactly `events`,
/// then run `check` on the index.
struct Case {
    name: &'static str,
    setup: Vec<Resource>,
    change: Vec<Write>,
    events: &'static [&'static str],
    check: fn(&MeshIndex),
}

fn run_cases(cases: Vec<Case>) {
    for case in cases {
        eprintln!("case: {}", case.name);
        let mut harness = Harness::new(case.setup);
        let events = harness.write(case.change);
        assert_eq!(events, case.events, "case {:?}: events", case.name);
        (case.check)(&harness.index);
    }
}

fn put(object: impl Into<Resource>) -> Write {
    Write::Put(object.into())
}

fn remove(object: impl Into<Resource>) -> Write {
    Write::Remove(object.into().object_ref())
}

/// A check for cases whose point is the events alone.
fn no_check(_: &MeshIndex) {}
