use std::time::{Duration, SystemTime};

use super::*;

fn root_pem() -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem().into_bytes()
}

#[test]
fn renewal_is_due_at_the_fraction_of_the_remaining_lifetime() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let cases = [
        (Duration::from_secs(24 * 3600), 0.5, Duration::from_secs(12 * 3600)),
        (Duration::from_secs(100), 0.8, Duration::from_secs(80)),
        (Duration::from_secs(4), 0.5, Duration::from_secs(2)),
    ];
    for (left, fraction, want) in cases {
        assert_eq!(refresh_delay(now, now + left, fraction), want, "{left:?} x {fraction}");
    }
    // Already expired: now.
    assert_eq!(refresh_delay(now, now - Duration::from_secs(1), 0.5), Duration::ZERO);
}

#[tokio::test]
async fn invalid_configurations_are_refused_with_the_reason() {
    let root = root_pem();
    let cases: Vec<(&str, CaClientConfig, &str)> = vec![
        ("root", CaClientConfig::new("https://127.0.0.1:1", b"not pem".to_vec()), "CA root certificate"),
        (
            "address",
            CaClientConfig::new("not a uri", root.clone()),
            "the CA at not a uri: invalid server address \"not a uri\"",
        ),
        (
            "fraction",
            CaClientConfig { refresh_fraction: 1.5, ..CaClientConfig::new("https://127.0.0.1:1", root.clone()) },
            "refresh_fraction 1.5",
        ),
    ];
    for (case, config, want) in cases {
        let error = CertManager::new(config).unwrap_err().to_string();
        assert!(error.contains(want), "{case}: {error}");
    }
}

#[tokio::test]
async fn an_unknown_identity_has_no_current_certificate_and_dumps_empty() {
    let manager = CertManager::new(CaClientConfig::new("https://127.0.0.1:1", root_pem())).unwrap();
    let id: Identity = "spiffe://cluster.local/ns/a/sa/b".parse().unwrap();
    assert!(manager.current(&id).is_none());
    assert_eq!(manager.dump(), serde_json::json!([]));
    assert_eq!(manager.roots().certs().len(), 1);
}
