use super::*;
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};

fn resource(name: &str, body: &'static str) -> Resource {
    Resource {
        type_url: ADDRESS_TYPE,
        name: name.to_string(),
        aliases: Vec::new(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn upsert(resources: Vec<Resource>) -> ResourceUpdate {
    ResourceUpdate { full: false, upserts: resources, removals: Vec::new() }
}

fn names(changes: Changes) -> Vec<String> {
    match changes {
        Changes::Names(names, _) => {
            let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            names.sort();
            names
        }
        Changes::Trimmed => panic!("expected names, the log was trimmed"),
    }
}

#[test]
fn identical_upsert_is_a_no_op() {
    let cache = Cache::new();
    let first = cache.apply(upsert(vec![resource("a", "1")]));
    assert_eq!(first, Applied { revision: 1, upserted: 1, removed: 0 });
    let version = cache.lookup(ADDRESS_TYPE, "a").unwrap().version.clone();
    let mut watch = cache.subscribe();
    watch.borrow_and_update();

    let again = cache.apply(upsert(vec![resource("a", "1")]));
    assert_eq!(again, Applied { revision: 1, upserted: 0, removed: 0 });
    assert!(!watch.has_changed().unwrap(), "a no-op must not wake connections");
    assert_eq!(cache.lookup(ADDRESS_TYPE, "a").unwrap().version, version);

    let changed = cache.apply(upsert(vec![resource("a", "2")]));
    assert_eq!(changed.revision, 2);
    assert!(watch.has_changed().unwrap());
    assert_ne!(cache.lookup(ADDRESS_TYPE, "a").unwrap().version, version);
}

#[test]
fn alias_change_is_a_change() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("a", "1")]));
    let before = cache.lookup(ADDRESS_TYPE, "a").unwrap().version.clone();
    let applied = cache.apply(upsert(vec![resource("a", "1").with_aliases(vec!["/10.0.0.1".into()])]));
    assert_eq!(applied.upserted, 1);
    assert_ne!(cache.lookup(ADDRESS_TYPE, "a").unwrap().version, before);
}

#[test]
fn same_content_same_version_across_caches() {
    let (one, two) = (Cache::new(), Cache::new());
    one.apply(upsert(vec![resource("x", "0"), resource("a", "1")]));
    two.apply(upsert(vec![resource("a", "1")]));
    assert_eq!(one.lookup(ADDRESS_TYPE, "a").unwrap().version, two.lookup(ADDRESS_TYPE, "a").unwrap().version);
}

#[test]
fn full_update_replaces_the_state() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("a", "1"), resource("b", "1")]));
    cache.apply(upsert(vec![Resource { type_url: AUTHORIZATION_TYPE, ..resource("p", "1") }]));
    let applied = cache.apply(ResourceUpdate {
        full: true,
        upserts: vec![resource("b", "1"), resource("c", "1")],
        removals: vec![],
    });
    assert_eq!(applied, Applied { revision: 3, upserted: 1, removed: 2 });
    let mut served: Vec<String> = cache.snapshot(ADDRESS_TYPE).iter().map(|e| e.name.clone()).collect();
    served.sort();
    assert_eq!(served, ["b", "c"]);
    assert!(cache.snapshot(AUTHORIZATION_TYPE).is_empty(), "a full update covers every type");
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 2))), ["a", "c"]);
    assert_eq!(cache.read(|s| names(s.changes_since(AUTHORIZATION_TYPE, 2))), ["p"]);
}

#[test]
fn removal_then_upsert_in_one_batch_keeps_the_resource() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("a", "1")]));
    cache.apply(ResourceUpdate {
        full: false,
        upserts: vec![resource("a", "2")],
        removals: vec![(ADDRESS_TYPE, "a".into()), (ADDRESS_TYPE, "missing".into())],
    });
    assert_eq!(cache.lookup(ADDRESS_TYPE, "a").unwrap().body, Bytes::from_static(b"2"));
}

#[test]
fn lookup_by_name_or_alias() {
    let cache = Cache::new();
    cache.apply(upsert(vec![
        resource("uid-1", "1").with_aliases(vec!["/10.0.0.1".into(), "net/10.0.0.1".into()]),
        resource("ns/svc", "1").with_aliases(vec!["/10.96.0.1".into()]),
    ]));
    assert_eq!(cache.lookup(ADDRESS_TYPE, "uid-1").unwrap().name, "uid-1");
    assert_eq!(cache.lookup(ADDRESS_TYPE, "/10.0.0.1").unwrap().name, "uid-1");
    assert_eq!(cache.lookup(ADDRESS_TYPE, "net/10.0.0.1").unwrap().name, "uid-1");
    assert_eq!(cache.lookup(ADDRESS_TYPE, "/10.96.0.1").unwrap().name, "ns/svc");
    assert!(cache.lookup(ADDRESS_TYPE, "/10.0.0.2").is_none());
    assert!(cache.lookup(AUTHORIZATION_TYPE, "uid-1").is_none());

    // The IP moves to another workload; the old one keeps it briefly: the newest claim wins,
    // and the alias survives the old claimer going away.
    cache.apply(upsert(vec![resource("uid-2", "1").with_aliases(vec!["/10.0.0.1".into()])]));
    assert_eq!(cache.lookup(ADDRESS_TYPE, "/10.0.0.1").unwrap().name, "uid-2");
    cache.apply(ResourceUpdate { removals: vec![(ADDRESS_TYPE, "uid-1".into())], ..Default::default() });
    assert_eq!(cache.lookup(ADDRESS_TYPE, "/10.0.0.1").unwrap().name, "uid-2");
    assert!(cache.lookup(ADDRESS_TYPE, "net/10.0.0.1").is_none());

    // Dropping an alias from a resource unindexes it.
    cache.apply(upsert(vec![resource("uid-2", "1")]));
    assert!(cache.lookup(ADDRESS_TYPE, "/10.0.0.1").is_none());
}

#[test]
fn changelog_reports_changes_since_a_revision() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("a", "1")]));
    cache.apply(upsert(vec![resource("b", "1")]));
    cache.apply(ResourceUpdate { removals: vec![(ADDRESS_TYPE, "a".into())], ..Default::default() });
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 0))), ["a", "b"]);
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 1))), ["a", "b"]);
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 2))), ["a"]);
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 3))), Vec::<String>::new());
    assert_eq!(cache.read(|s| s.of_type(ADDRESS_TYPE).revision()), 3);
}

#[test]
fn trimmed_changelog_falls_back_to_a_full_diff() {
    let cache = Cache::with_changelog_limit(3);
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let applied = cache.apply(upsert(vec![resource(name, "1")]));
        assert_eq!(applied.revision, i as u64 + 1);
    }
    // Revisions 3..=5 are kept: a reader at 2 or later is served from the log.
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 2))), ["c", "d", "e"]);
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 4))), ["e"]);
    assert_eq!(cache.read(|s| s.changes_since(ADDRESS_TYPE, 1)), Changes::Trimmed);
    assert_eq!(cache.read(|s| s.changes_since(ADDRESS_TYPE, 0)), Changes::Trimmed);

    // One batch larger than the whole log: only a full diff can cover it.
    let big: Vec<Resource> = ["f", "g", "h", "i"].iter().map(|n| resource(n, "1")).collect();
    cache.apply(upsert(big));
    assert_eq!(cache.read(|s| s.changes_since(ADDRESS_TYPE, 5)), Changes::Trimmed);
    assert_eq!(cache.read(|s| names(s.changes_since(ADDRESS_TYPE, 6))), Vec::<String>::new());
}
