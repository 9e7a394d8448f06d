use super::*;
use crate::xds::proto::ADDRESS_TYPE;
use crate::xds::resource::{Resource, ResourceUpdate};
use crate::xds::server::cache::Cache;
use bytes::Bytes;

fn resource(name: &str, body: &'static str, aliases: &[&str]) -> Resource {
    Resource {
        type_url: ADDRESS_TYPE,
        name: name.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn upsert(resources: Vec<Resource>) -> ResourceUpdate {
    ResourceUpdate { full: false, upserts: resources, removals: Vec::new() }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn next(cache: &Cache, subscription: &mut Subscription) -> Option<(Vec<String>, Vec<String>)> {
    let delta = cache.read(|s| subscription.next_delta(s))?;
    let mut names: Vec<String> = delta.resources.iter().map(|e| e.name.clone()).collect();
    names.sort();
    let mut removed = delta.removed;
    removed.sort();
    Some((names, removed))
}

fn wildcard(cache: &Cache, claims: HashMap<String, String>) -> Subscription {
    let mut subscription = Subscription::new(ADDRESS_TYPE);
    cache.read(|s| subscription.on_request(s, true, Vec::new(), Vec::new(), claims));
    subscription
}

#[test]
fn initial_versions_skip_what_the_client_has_and_remove_what_is_gone() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("same", "1", &[]), resource("stale", "2", &[]), resource("new", "1", &[])]));
    let same = cache.lookup(ADDRESS_TYPE, "same").unwrap().version.to_string();
    let claims = HashMap::from([
        ("same".to_string(), same),
        ("stale".to_string(), "old".to_string()),
        ("gone".to_string(), "1".to_string()),
    ]);
    let mut subscription = wildcard(&cache, claims);
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["new", "stale"]), strings(&["gone"]))));
    assert_eq!(next(&cache, &mut subscription), None);
}

#[test]
fn first_response_is_sent_even_when_empty() {
    let cache = Cache::new();
    let mut subscription = wildcard(&cache, HashMap::new());
    assert_eq!(next(&cache, &mut subscription), Some((vec![], vec![])));
    assert_eq!(next(&cache, &mut subscription), None);
}

#[test]
fn nack_does_not_cause_a_resend() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("a", "1", &[])]));
    let mut subscription = wildcard(&cache, HashMap::new());
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["a"]), vec![])));
    subscription.on_sent("1-1", "1");
    subscription.on_reply("1-1", Some("bad".to_string()));
    assert!(!subscription.has_work(cache.read(|s| s.of_type(ADDRESS_TYPE).revision())));
    assert_eq!(next(&cache, &mut subscription), None);
    assert_eq!((subscription.status.nacks, subscription.status.last_nack.as_deref()), (1, Some("bad")));
    assert_eq!(subscription.status.last_acked, None);
    cache.apply(upsert(vec![resource("a", "2", &[])]));
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["a"]), vec![])));
}

#[test]
fn behind_a_trimmed_changelog_diffs_everything() {
    let cache = Cache::with_changelog_limit(2);
    cache.apply(upsert(vec![resource("a", "1", &[]), resource("b", "1", &[])]));
    let mut subscription = wildcard(&cache, HashMap::new());
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["a", "b"]), vec![])));
    cache.apply(ResourceUpdate { removals: vec![(ADDRESS_TYPE, "a".into())], ..Default::default() });
    for body in ["2", "3", "4"] {
        cache.apply(upsert(vec![resource("c", body, &[])]));
    }
    assert_eq!(cache.read(|s| s.changes_since(ADDRESS_TYPE, 1)), Changes::Trimmed);
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["c"]), strings(&["a"]))));
}

#[test]
fn on_demand_names_aliases_and_unsubscribe() {
    let cache = Cache::new();
    cache.apply(upsert(vec![resource("w1", "1", &["/10.0.0.1"]), resource("w2", "1", &["/10.0.0.2"])]));
    let mut subscription = Subscription::new(ADDRESS_TYPE);
    let star = || vec!["*".to_string()];
    cache.read(|s| subscription.on_request(s, true, star(), star(), HashMap::new()));
    assert_eq!(next(&cache, &mut subscription), Some((vec![], vec![])));
    cache.read(|s| subscription.on_request(s, false, strings(&["/10.0.0.1", "missing"]), vec![], HashMap::new()));
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["w1"]), strings(&["missing"]))));
    // A change to an unsubscribed resource is not sent; to a subscribed one it is.
    cache.apply(upsert(vec![resource("w2", "2", &["/10.0.0.2"])]));
    assert_eq!(next(&cache, &mut subscription), None);
    cache.apply(upsert(vec![resource("w1", "2", &["/10.0.0.1"])]));
    assert_eq!(next(&cache, &mut subscription), Some((strings(&["w1"]), vec![])));
    // Unsubscribing forgets silently (Envoy: no removal for unsubscribed names).
    cache.read(|s| subscription.on_request(s, false, vec![], strings(&["/10.0.0.1"]), HashMap::new()));
    assert_eq!(next(&cache, &mut subscription), None);
    cache.apply(upsert(vec![resource("w1", "3", &["/10.0.0.1"])]));
    assert_eq!(next(&cache, &mut subscription), None);
    assert_eq!(subscription.subscription_status(), SubscriptionStatus::Names { names: 1 });
}
