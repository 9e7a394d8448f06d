use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::Duration;

use prost::Message;

use super::client::{Request, encode_ack, encode_hello, parse_request};
use super::proto::{self, workload_request::Payload};

fn encode(payload: Option<Payload>) -> Vec<u8> {
    proto::WorkloadRequest { payload }.encode_to_vec()
}

fn add(uid: &str, info: bool) -> Vec<u8> {
    encode(Some(Payload::Add(proto::AddWorkload {
        uid: uid.into(),
        workload_info: info.then(|| proto::WorkloadInfo {
            name: "web-0".into(),
            namespace: "shop".into(),
            service_account: "web".into(),
        }),
    })))
}

fn own_netns() -> OwnedFd {
    File::open("/proc/self/ns/net").unwrap().into()
}

fn error_of(data: &[u8], fds: Vec<OwnedFd>) -> String {
    parse_request(data, fds).expect_err("expected a rejection")
}

#[test]
fn add_carries_the_pod_and_its_namespace() {
    match parse_request(&add("uid-1", true), vec![own_netns()]).unwrap() {
        Request::Add { pod, netns } => {
            assert_eq!(pod.uid, "uid-1");
            assert_eq!(
                (pod.name.as_str(), pod.namespace.as_str(), pod.service_account.as_str()),
                ("web-0", "shop", "web")
            );
            assert_eq!(netns, crate::sys::netns::Netns::current().unwrap());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn add_needs_exactly_one_network_namespace() {
    assert_eq!(error_of(&add("uid-1", true), vec![]), "add uid-1: expected 1 network namespace descriptor, got 0");
    assert_eq!(
        error_of(&add("uid-1", true), vec![own_netns(), own_netns()]),
        "add uid-1: expected 1 network namespace descriptor, got 2"
    );
    let not_netns = error_of(&add("uid-1", true), vec![File::open("/dev/null").unwrap().into()]);
    assert!(not_netns.starts_with("add uid-1: descriptor is not a namespace"), "{not_netns}");
    assert_eq!(error_of(&add("uid-1", false), vec![own_netns()]), "add uid-1: missing workload_info");
    assert_eq!(error_of(&add("", true), vec![own_netns()]), "add with empty uid");
}

#[test]
fn keep_del_and_snapshot_take_no_descriptors() {
    let keep = encode(Some(Payload::Keep(proto::KeepWorkload { uid: "k".into() })));
    let del = encode(Some(Payload::Del(proto::DelWorkload { uid: "d".into() })));
    let snapshot = encode(Some(Payload::SnapshotSent(proto::SnapshotSent {})));
    assert!(matches!(parse_request(&keep, vec![]).unwrap(), Request::Keep { uid } if uid == "k"));
    assert!(matches!(parse_request(&del, vec![]).unwrap(), Request::Del { uid } if uid == "d"));
    assert!(matches!(parse_request(&snapshot, vec![]).unwrap(), Request::SnapshotSent));

    assert_eq!(error_of(&keep, vec![own_netns()]), "keep k: unexpected descriptors (1), only add carries one");
    assert_eq!(error_of(&del, vec![own_netns()]), "del d: unexpected descriptors (1), only add carries one");
    assert_eq!(
        error_of(&snapshot, vec![own_netns()]),
        "snapshot_sent: unexpected descriptors (1), only add carries one"
    );
    let empty_keep = encode(Some(Payload::Keep(proto::KeepWorkload { uid: String::new() })));
    assert_eq!(error_of(&empty_keep, vec![]), "keep with empty uid");
}

#[test]
fn garbage_and_empty_requests_are_errors() {
    let garbage = error_of(&[0xff, 0xff, 0xff, 0xff], vec![]);
    assert!(garbage.starts_with("malformed WorkloadRequest"), "{garbage}");
    assert_eq!(error_of(&encode(None), vec![]), "WorkloadRequest without payload");
}

#[test]
fn acks_and_hello_encode_as_the_protocol_says() {
    let ok = proto::WorkloadResponse::decode(encode_ack(&Ok(())).as_slice()).unwrap();
    assert_eq!(ok.payload, Some(proto::workload_response::Payload::Ack(proto::Ack { error: String::new() })));
    let failed = proto::WorkloadResponse::decode(encode_ack(&Err("nope".into())).as_slice()).unwrap();
    assert_eq!(failed.payload, Some(proto::workload_response::Payload::Ack(proto::Ack { error: "nope".into() })));
    let hello = proto::ZdsHello::decode(encode_hello().as_slice()).unwrap();
    assert_eq!(hello.version, proto::Version::V1 as i32);
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut backoff = super::client::Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
    let delays: Vec<_> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
    assert_eq!(delays, [10, 20, 35, 35]);
    backoff.reset();
    assert_eq!(backoff.next_delay(), Duration::from_millis(10));
}
