use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Loopback only, ephemeral ports (tests never listen on other addresses).
fn loopback_config() -> AdminConfig {
    let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    AdminConfig { admin: any_port, metrics: any_port, readiness: any_port }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection; the server answers with Content-Length, and
/// `Connection: close` ends the read.
async fn request(address: SocketAddr, method: &str, path: &str, accept: Option<&str>) -> Reply {
    assert!(address.ip().is_loopback(), "tests only talk to loopback, not {address}");
    let mut stream = TcpStream::connect(address).await.expect("connect to the endpoint");
    let accept = accept.map(|a| format!("accept: {a}\r\n")).unwrap_or_default();
    let request = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n{accept}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("reply within 10s")
        .expect("read reply");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status in {head}"));
    Reply { status, head: head.to_string(), body: body.to_string() }
}

async fn get(address: SocketAddr, path: &str) -> Reply {
    request(address, "GET", path, None).await
}

struct Fixture {
    servers: AdminServers,
    ready: watch::Sender<bool>,
    dumps: Arc<AtomicUsize>,
    counter: Counter,
}

async fn start_fixture() -> Fixture {
    let mut registry = Registry::default();
    let counter = Counter::default();
    registry.register("test_requests", "Requests in the test", counter.clone());
    let dumps = Arc::new(AtomicUsize::new(0));
    let dump: ConfigDump = {
        let dumps = dumps.clone();
        Arc::new(move || {
            let n = dumps.fetch_add(1, Ordering::SeqCst) + 1;
            serde_json::json!({ "workloads": [{ "name": "sleep" }], "dump": n })
        })
    };
    let (ready, ready_rx) = watch::channel(false);
    let servers = start(loopback_config(), dump, Arc::new(registry), ready_rx).await.expect("start on loopback");
    Fixture { servers, ready, dumps, counter }
}

#[test]
fn defaults_are_istios_ports_with_admin_on_loopback_only() {
    let config = AdminConfig::default();
    assert_eq!(config.admin, "127.0.0.1:15000".parse().unwrap());
    assert_eq!(config.metrics, "0.0.0.0:15020".parse().unwrap());
    assert_eq!(config.readiness, "0.0.0.0:15021".parse().unwrap());
}

#[tokio::test]
async fn binds_ephemeral_loopback_ports() {
    let fixture = start_fixture().await;
    let servers = &fixture.servers;
    for address in [servers.admin_addr, servers.metrics_addr, servers.readiness_addr] {
        assert!(address.ip().is_loopback(), "{address}");
        assert_ne!(address.port(), 0, "{address}");
    }
}

#[tokio::test]
async fn config_dump_is_json_from_the_closure_on_each_request() {
    let fixture = start_fixture().await;
    let reply = get(fixture.servers.admin_addr, "/config_dump").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let value: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON body");
    assert_eq!(value["workloads"][0]["name"], "sleep");
    assert_eq!(value["dump"], 1);
    let again: serde_json::Value =
        serde_json::from_str(&get(fixture.servers.admin_addr, "/config_dump").await.body).expect("JSON body");
    assert_eq!(again["dump"], 2);
    assert_eq!(fixture.dumps.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn readiness_flips_from_503_to_200() {
    let fixture = start_fixture().await;
    for address in [fixture.servers.readiness_addr, fixture.servers.admin_addr] {
        let reply = get(address, "/healthz/ready").await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(reply.body.starts_with("not ready: "), "{}", reply.body);
    }
    fixture.ready.send(true).expect("servers hold the receiver");
    for address in [fixture.servers.readiness_addr, fixture.servers.admin_addr] {
        let reply = get(address, "/healthz/ready").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, "ready\n");
    }
    fixture.ready.send(false).expect("servers hold the receiver");
    assert_eq!(get(fixture.servers.readiness_addr, "/healthz/ready").await.status, 503);
}

#[tokio::test]
async fn metrics_are_served_on_both_paths_and_on_admin() {
    let fixture = start_fixture().await;
    fixture.counter.inc_by(7);
    for (address, path) in [
        (fixture.servers.metrics_addr, "/metrics"),
        (fixture.servers.metrics_addr, "/stats/prometheus"),
        (fixture.servers.admin_addr, "/metrics"),
    ] {
        let reply = get(address, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(reply.body.contains("# TYPE test_requests counter\n"), "{path}: {}", reply.body);
        assert!(reply.body.contains("test_requests_total 7\n"), "{path}: {}", reply.body);
        assert!(reply.body.ends_with("# EOF\n"), "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    }
}

#[tokio::test]
async fn metrics_content_type_follows_accept() {
    let fixture = start_fixture().await;
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let reply = request(fixture.servers.metrics_addr, "GET", "/metrics", Some(accept)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
}

#[tokio::test]
async fn unknown_paths_are_404_and_each_server_keeps_its_own_routes() {
    let fixture = start_fixture().await;
    let servers = &fixture.servers;
    for (address, path) in [
        (servers.admin_addr, "/nope"),
        (servers.admin_addr, "/stats/prometheus"),
        // The config dump is only on the loopback admin port, never on the public ones.
        (servers.metrics_addr, "/config_dump"),
        (servers.metrics_addr, "/healthz/ready"),
        (servers.readiness_addr, "/config_dump"),
        (servers.readiness_addr, "/metrics"),
        (servers.readiness_addr, "/"),
    ] {
        let reply = get(address, path).await;
        assert_eq!(reply.status, 404, "{address}{path}: {}", reply.body);
        assert_eq!(reply.body, format!("no endpoint {path}\n"));
    }
    assert_eq!(fixture.dumps.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn admin_index_lists_the_endpoints() {
    let fixture = start_fixture().await;
    let reply = get(fixture.servers.admin_addr, "/").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("/config_dump\n") && reply.body.contains("/healthz/ready\n"), "{}", reply.body);
}

#[tokio::test]
async fn only_get_is_allowed() {
    let fixture = start_fixture().await;
    let reply = request(fixture.servers.admin_addr, "POST", "/config_dump", None).await;
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert_eq!(fixture.dumps.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_taken_address_is_an_error_naming_the_endpoint() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind loopback");
    let address = taken.local_addr().unwrap();
    let config = AdminConfig { readiness: address, ..loopback_config() };
    let (_ready, ready_rx) = watch::channel(false);
    let dump: ConfigDump = Arc::new(|| serde_json::Value::Null);
    let error = match start(config, dump, Arc::new(Registry::default()), ready_rx).await {
        Ok(_) => panic!("binding a taken address must fail"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("readiness address") && error.contains(&address.to_string()), "{error}");
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let fixture = start_fixture().await;
    let address = fixture.servers.admin_addr;
    assert_eq!(get(address, "/healthz/ready").await.status, 503);
    fixture.servers.shutdown();
    // The listener closes when the aborted task is dropped, which happens on the runtime shortly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(address).await.is_err() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{address} still accepts after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
