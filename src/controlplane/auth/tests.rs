use std::time::Duration;

use ::kube::client::Body;
use http::{Request, Response};
use k8s_openapi::api::authentication::v1::TokenReview;

use super::*;
use crate::xds::auth::{AuthError, Authenticator, Caller};

fn caller(ns: &str, sa: &str, pod: Option<&str>, node: Option<&str>) -> Caller {
    Caller {
        namespace: ns.into(),
        service_account: sa.into(),
        pod: pod.map(str::to_string),
        node: node.map(str::to_string),
    }
}

#[test]
fn tokens_file_parses_accounts_and_options() {
    let text = "# comment\n\n  tok-ztunnel istio-system/ztunnel node=node-1\ntok-web shop/web pod=web-1 node=n2\ntok-plain a/b\n";
    let table = TokenTable::parse("tokens.txt", text).unwrap();
    assert_eq!(table.len(), 3);
    assert_eq!(table.lookup("tok-ztunnel"), Some(&caller("istio-system", "ztunnel", None, Some("node-1"))));
    assert_eq!(table.lookup("tok-web"), Some(&caller("shop", "web", Some("web-1"), Some("n2"))));
    assert_eq!(table.lookup("tok-plain"), Some(&caller("a", "b", None, None)));
    assert_eq!(table.lookup("tok-plai"), None);
    assert_eq!(table.lookup("tok-plainx"), None);
    assert_eq!(table.lookup(""), None);
}

#[test]
fn tokens_file_errors_name_file_and_line_but_never_the_token() {
    let cases = [
        ("ok a/b\nsecret-1\n", "tokens.txt:2: expected '<token> <namespace>/<service-account>"),
        ("secret-1 nosa\n", "tokens.txt:1: \"nosa\" is not <namespace>/<service-account>"),
        ("secret-1 a/B_ad!\n", "tokens.txt:1: \"a/B_ad!\" is not a valid"),
        ("secret-1 a/b zone=x\n", "tokens.txt:1: unknown option \"zone\""),
        ("secret-1 a/b node=\n", "tokens.txt:1: \"node=\" is not node=<node> or pod=<pod>"),
        ("secret-1 a/b node=x node=y\n", "tokens.txt:1: node= given twice"),
        ("# c\nsecret-1 a/b\nsecret-1 c/d\n", "tokens.txt:3: this token is already given on line 2"),
    ];
    for (text, want) in cases {
        let err = TokenTable::parse("tokens.txt", text).unwrap_err().to_string();
        assert!(err.starts_with(want), "{text:?}: got {err:?}, want {want:?}");
        assert!(!err.contains("secret-1"), "{text:?}: the error shows the token: {err:?}");
    }
}

#[tokio::test]
async fn tokens_authenticator_rereads_a_changed_file_and_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "t1 a/one\n").unwrap();
    let auth = TokensAuthenticator::from_file(&path).unwrap();
    assert_eq!(auth.authenticate("t1").await.unwrap(), caller("a", "one", None, None));
    assert!(matches!(auth.authenticate("t2").await, Err(AuthError::Rejected(_))));

    // A new version (different length, so the change is seen even within one mtime tick).
    std::fs::write(&path, "t2 b/two node=n\n# more\n").unwrap();
    assert_eq!(auth.authenticate("t2").await.unwrap(), caller("b", "two", None, Some("n")));
    assert!(auth.authenticate("t1").await.is_err(), "a removed token no longer works");

    // A broken version is reported and the previous tokens stay.
    std::fs::write(&path, "t3\n").unwrap();
    assert_eq!(auth.authenticate("t2").await.unwrap(), caller("b", "two", None, Some("n")));

    let missing = TokensAuthenticator::from_file(dir.path().join("absent")).err().unwrap().to_string();
    assert!(missing.contains("absent: cannot read"), "{missing}");
}

fn review(json: serde_json::Value) -> TokenReview {
    serde_json::from_value(json).unwrap()
}

fn audiences() -> Vec<String> {
    vec![ISTIO_CA_AUDIENCE.to_string()]
}

#[test]
fn token_review_of_a_bound_service_account_token() {
    let reviewed = review(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": "x", "audiences": ["istio-ca"]},
        "status": {
            "authenticated": true,
            "audiences": ["istio-ca"],
            "user": {
                "username": "system:serviceaccount:istio-system:ztunnel",
                "uid": "0b4b",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"],
                "extra": {
                    "authentication.kubernetes.io/pod-name": ["ztunnel-abcde"],
                    "authentication.kubernetes.io/pod-uid": ["7f1e"],
                    "authentication.kubernetes.io/node-name": ["node-1"]
                }
            }
        }
    }));
    assert_eq!(
        caller_from_review(&reviewed, &audiences()).unwrap(),
        caller("istio-system", "ztunnel", Some("ztunnel-abcde"), Some("node-1"))
    );
}

#[test]
fn token_review_refusals() {
    let not_authenticated = review(serde_json::json!({
        "spec": {}, "status": {"authenticated": false, "error": "token has expired"}
    }));
    assert_eq!(
        caller_from_review(&not_authenticated, &audiences()),
        Err(AuthError::Rejected("token has expired".into()))
    );

    let user = review(serde_json::json!({
        "spec": {}, "status": {"authenticated": true, "user": {"username": "kubernetes-admin"}}
    }));
    let err = caller_from_review(&user, &audiences()).unwrap_err().to_string();
    assert!(err.contains("\"kubernetes-admin\" is not a service account"), "{err}");

    let other_audience = review(serde_json::json!({
        "spec": {}, "status": {"authenticated": true, "audiences": ["vault"],
            "user": {"username": "system:serviceaccount:a:b"}}
    }));
    let err = caller_from_review(&other_audience, &audiences()).unwrap_err().to_string();
    assert!(err.contains("not for audience istio-ca"), "{err}");

    let no_status = review(serde_json::json!({"spec": {}}));
    assert!(matches!(caller_from_review(&no_status, &audiences()), Err(AuthError::Unavailable(_))));

    // Without pod information, only the service account is known.
    let legacy = review(serde_json::json!({
        "spec": {}, "status": {"authenticated": true, "user": {"username": "system:serviceaccount:shop:web"}}
    }));
    assert_eq!(caller_from_review(&legacy, &audiences()).unwrap(), caller("shop", "web", None, None));
}

/// The authenticator against a mock API server: the request it sends, and how it reads the
/// answer or a failure.
#[tokio::test]
async fn token_review_authenticator_posts_a_review() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = ::kube::Client::new(service, "default");
    let auth = TokenReviewAuthenticator::new(client, audiences());

    let server = tokio::spawn(async move {
        // First request: answered with an authenticated review.
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri().path(), "/apis/authentication.k8s.io/v1/tokenreviews");
        let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["spec"]["token"], "the-token");
        assert_eq!(sent["spec"]["audiences"], serde_json::json!(["istio-ca"]));
        let answer = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": sent["spec"].clone(),
            "status": {"authenticated": true, "audiences": ["istio-ca"],
                "user": {"username": "system:serviceaccount:shop:web",
                    "extra": {"authentication.kubernetes.io/pod-name": ["web-1"]}}}
        });
        send.send_response(Response::builder().status(200).body(Body::from(answer.to_string().into_bytes())).unwrap());

        // Second request: the API server fails.
        let (_, send) = handle.next_request().await.expect("a second request");
        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "etcd unavailable", "reason": "InternalError", "code": 500});
        send.send_response(Response::builder().status(500).body(Body::from(status.to_string().into_bytes())).unwrap());
    });

    let got = tokio::time::timeout(Duration::from_secs(10), auth.authenticate("the-token")).await.unwrap();
    assert_eq!(got.unwrap(), caller("shop", "web", Some("web-1"), None));
    let failed = tokio::time::timeout(Duration::from_secs(10), auth.authenticate("the-token")).await.unwrap();
    assert!(matches!(&failed, Err(AuthError::Unavailable(m)) if m.contains("etcd unavailable")), "{failed:?}");
    server.await.unwrap();
}
