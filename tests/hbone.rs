//! HBONE end to end on 127.0.0.1: the pool dialing a real TLS listener serving
//! `serve_connection`, certificates from the control plane's CA. What a test server does with a
//! CONNECT depends on the port it targets (see `TestHandler`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ambient::controlplane::ca::{CertificateAuthority, PemSource, SigningMaterial, generate_root};
use ambient::hbone::headers::{self, Baggage};
use ambient::hbone::{
    ConnectRequest, Dialer, HboneError, HbonePool, HboneStream, InboundHandler, InboundRequest, PoolConfig, PoolKey,
    Responder, ServerConfig, bridge, serve_connection,
};
use ambient::model::Identity;
use ambient::tls::{TrustRoots, WorkloadCertificate, workload_client_config, workload_server_config};
use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::StatusCode;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TRUST_DOMAIN: &str = "cluster.local";
const WAIT: Duration = Duration::from_secs(20);

// Ports a CONNECT may target on the test server, and what the server does.
const ECHO: u16 = 7;
/// Reads to the end and reports how it ended.
const SINK: u16 = 9;
/// Writes a greeting and half-closes first, then reads to the end.
const GREET: u16 = 13;
/// Accepts, reads a byte, then resets the stream with CONNECT_ERROR.
const RESET: u16 = 14;
/// Drops the responder without answering.
const UNANSWERED: u16 = 15;
const DENY: u16 = 401;
// Any other port: bridged to 127.0.0.1:<port>.

fn id(sa: &str) -> Identity {
    Identity::new(TRUST_DOMAIN, "shop", sa).unwrap()
}

fn certificate_authority() -> CertificateAuthority {
    let (cert, key) = generate_root(TRUST_DOMAIN).unwrap();
    CertificateAuthority::new(&SigningMaterial {
        cert: PemSource::new("root-cert.pem", cert),
        key: PemSource::new("root-key.pem", key),
        chain: None,
        root: None,
    })
    .unwrap()
}

fn issue(ca: &CertificateAuthority, identity: &Identity) -> Arc<WorkloadCertificate> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let chain = ca.issue(&key.subject_public_key_info(), identity, Duration::from_secs(3600)).unwrap();
    Arc::new(WorkloadCertificate::from_pem(&key.serialize_pem(), &chain).unwrap())
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// What the handler saw and did, in order.
#[derive(Debug)]
enum Event {
    Request(Box<InboundRequest>),
    Ended(String),
}

struct TestHandler {
    events: mpsc::UnboundedSender<Event>,
}

impl InboundHandler for TestHandler {
    fn handle(&self, req: InboundRequest, responder: Responder) -> BoxFuture<'static, ()> {
        let events = self.events.clone();
        let port = req.destination.port();
        let _ = events.send(Event::Request(Box::new(req)));
        let report = move |text: String| {
            let _ = events.send(Event::Ended(text));
        };
        async move {
            match port {
                DENY => responder.reject(StatusCode::UNAUTHORIZED),
                UNANSWERED => drop(responder),
                ECHO => {
                    let (mut read, mut write) = tokio::io::split(responder.accept().unwrap());
                    let copied = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                    report(format!("echo {copied:?}"));
                }
                SINK => {
                    let mut stream = responder.accept().unwrap();
                    let mut data = Vec::new();
                    match stream.read_to_end(&mut data).await {
                        Ok(n) => report(format!("eof {n}")),
                        Err(e) => report(format!("error {:?}", e.kind())),
                    }
                }
                GREET => {
                    let mut stream = responder.accept().unwrap();
                    stream.write_all(b"hello from server").await.unwrap();
                    stream.shutdown().await.unwrap();
                    let mut data = String::new();
                    let result = stream.read_to_string(&mut data).await;
                    report(format!("got {data:?} {result:?}"));
                }
                RESET => {
                    let mut stream = responder.accept().unwrap();
                    // Once the client has the 200 (it writes only after), reset.
                    let _ = stream.read(&mut [0u8; 1]).await;
                    stream.reset(h2::Reason::CONNECT_ERROR);
                    report("reset".into());
                }
                port => {
                    let upstream = TcpStream::connect(("127.0.0.1", port)).await;
                    match upstream {
                        Ok(upstream) => {
                            let stream = responder.accept().unwrap();
                            report(format!("bridge {:?}", bridge(upstream, stream).await));
                        }
                        Err(_) => responder.reject(StatusCode::SERVICE_UNAVAILABLE),
                    }
                }
            }
        }
        .boxed()
    }
}

/// A TLS listener on 127.0.0.1 serving HBONE with [`TestHandler`].
struct TestServer {
    addr: SocketAddr,
    identity: Identity,
    accepted: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// How each TLS accept / `serve_connection` ended.
    outcomes: mpsc::UnboundedReceiver<Result<(), String>>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        self.kill_connections();
    }
}

impl TestServer {
    async fn start(ca: &CertificateAuthority, config: ServerConfig) -> TestServer {
        let identity = id("server");
        let tls = workload_server_config(&issue(ca, &identity), ca.roots().clone(), TRUST_DOMAIN).unwrap();
        let acceptor = TlsAcceptor::from(tls);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        let handler: Arc<dyn InboundHandler> = Arc::new(TestHandler { events: events_tx });
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (accepted, connections) = (accepted.clone(), connections.clone());
            async move {
                loop {
                    let Ok((tcp, peer)) = listener.accept().await else { return };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, handler, config, outcomes) =
                        (acceptor.clone(), handler.clone(), config.clone(), outcomes_tx.clone());
                    let connection = tokio::spawn(async move {
                        let outcome = match acceptor.accept(tcp).await {
                            Err(e) => Err(format!("tls: {e}")),
                            Ok(tls) => {
                                serve_connection(tls, peer, addr, handler, config).await.map_err(|e| e.to_string())
                            }
                        };
                        let _ = outcomes.send(outcome);
                    });
                    connections.lock().unwrap().push(connection);
                }
            }
        });
        TestServer { addr, identity, accepted, connections, outcomes, events, task }
    }

    /// Ends every accepted connection abruptly (the TCP sockets close), as a crashed server
    /// would; the listener keeps accepting.
    fn kill_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    async fn next_request(&mut self) -> InboundRequest {
        loop {
            match within("a request at the server", self.events.recv()).await.unwrap() {
                Event::Request(req) => return *req,
                Event::Ended(_) => continue,
            }
        }
    }

    async fn next_end(&mut self) -> String {
        loop {
            match within("a stream to end at the server", self.events.recv()).await.unwrap() {
                Event::Ended(text) => return text,
                Event::Request(_) => continue,
            }
        }
    }

    async fn next_outcome(&mut self) -> Result<(), String> {
        within("a connection outcome", self.outcomes.recv()).await.unwrap()
    }
}

fn loopback_dialer() -> Dialer {
    Arc::new(|dst: SocketAddr| {
        async move {
            assert!(dst.ip().is_loopback(), "tests dial loopback only, not {dst}");
            let tcp = TcpStream::connect(dst).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        }
        .boxed()
    })
}

/// A client: the source identity's certificate and the roots it trusts.
struct Client {
    cert: Arc<WorkloadCertificate>,
    roots: TrustRoots,
}

impl Client {
    fn new(ca: &CertificateAuthority) -> Client {
        Client { cert: issue(ca, &id("client")), roots: ca.roots().clone() }
    }

    fn request(&self, server: &TestServer, port: u16) -> ConnectRequest {
        ConnectRequest {
            key: PoolKey {
                source: 0,
                src_identity: self.cert.identity().clone(),
                dst_identity: server.identity.clone(),
                dst: server.addr,
            },
            cert: self.cert.clone(),
            roots: self.roots.clone(),
            authority: format!("127.0.0.1:{port}"),
            headers: http::HeaderMap::new(),
            dial: loopback_dialer(),
        }
    }
}

async fn echo_once(pool: &HbonePool, req: ConnectRequest, text: &[u8]) {
    let mut stream = within("connect", pool.connect(req)).await.unwrap();
    stream.write_all(text).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    within("echo", stream.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_carries_headers_and_the_client_identity() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    let mut req = client.request(&server, ECHO);
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.headers.insert(headers::FORWARDED, headers::forwarded(source, Some("web.shop.svc.cluster.local")));
    let baggage = Baggage { namespace: Some("shop".into()), workload_name: Some("web".into()), ..Default::default() };
    req.headers.insert(headers::BAGGAGE, headers::baggage(&baggage, "deployment").unwrap());
    req.headers.insert("x-test", "yes".parse().unwrap());
    echo_once(&pool, req, b"ping over hbone").await;

    let seen = server.next_request().await;
    assert_eq!(seen.authority, format!("127.0.0.1:{ECHO}"));
    assert_eq!(seen.destination, format!("127.0.0.1:{ECHO}").parse::<SocketAddr>().unwrap());
    assert_eq!(seen.peer_identity, id("client"));
    assert!(seen.peer_addr.ip().is_loopback());
    assert_eq!(seen.local_addr, server.addr);
    assert_eq!(seen.headers["x-test"], "yes");
    let forwarded = headers::parse_forwarded(&seen.headers[headers::FORWARDED]);
    assert_eq!((forwarded.for_ip, forwarded.for_port), (Some(source.ip()), Some(source.port())));
    assert_eq!(forwarded.host.as_deref(), Some("web.shop.svc.cluster.local"));
    assert_eq!(headers::parse_baggage(&seen.headers), baggage);
    assert!(server.next_end().await.starts_with("echo Ok(15)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_works_both_ways() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    // Client closes its side first and still reads everything the server sends after that.
    echo_once(&pool, client.request(&server, ECHO), &[7u8; 100_000]).await;
    assert_eq!(server.next_end().await, "echo Ok(100000)");

    // Server closes its side first and still reads what the client sends after that.
    let mut stream = within("connect", pool.connect(client.request(&server, GREET))).await.unwrap();
    let mut greeting = String::new();
    within("greeting", stream.read_to_string(&mut greeting)).await.unwrap();
    assert_eq!(greeting, "hello from server");
    stream.write_all(b"and hello back").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(server.next_end().await, r#"got "and hello back" Ok(14)"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_propagate_both_ways() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    // Client drops the tunnel mid-stream: the server reads a reset, not a clean end.
    let mut stream = within("connect", pool.connect(client.request(&server, SINK))).await.unwrap();
    stream.write_all(b"partial").await.unwrap();
    drop(stream);
    assert_eq!(server.next_end().await, "error ConnectionReset");

    // Server resets: the client's read fails with a reset.
    let mut stream = within("connect", pool.connect(client.request(&server, RESET))).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let mut data = Vec::new();
    let error = within("read", stream.read_to_end(&mut data)).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert_eq!(server.next_end().await, "reset");

    // Through the server's bridge: the upstream TCP connection is reset, the client sees it.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = upstream.accept().await.unwrap();
        let mut first = [0u8; 1];
        let _ = tcp.peek(&mut first).await;
        tcp.set_zero_linger().unwrap();
    });
    let mut stream = within("connect", pool.connect(client.request(&server, port))).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let error = within("read", stream.read_to_end(&mut data)).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    let end = server.next_end().await;
    assert!(end.starts_with("bridge Err"), "{end}");
    // Through the client's bridge: the source application resets its TCP connection, the
    // server reads a reset.
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TcpStream::connect(local.local_addr().unwrap()).await.unwrap();
    let (accepted, _) = local.accept().await.unwrap();
    let tunnel = within("connect", pool.connect(client.request(&server, SINK))).await.unwrap();
    let source_bridge = tokio::spawn(bridge(accepted, tunnel));
    app.writable().await.unwrap();
    app.try_write(b"some bytes").unwrap();
    app.set_zero_linger().unwrap();
    drop(app);
    let error = within("the source bridge", source_bridge).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert_eq!(server.next_end().await, "error ConnectionReset");

    // All of that on one healthy connection.
    echo_once(&pool, client.request(&server, ECHO), b"still fine").await;
    assert_eq!(pool.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_one_connection_for_sequential_and_concurrent_streams() {
    let ca = certificate_authority();
    let server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    for i in 0..10u8 {
        echo_once(&pool, client.request(&server, ECHO), &[i; 10]).await;
    }
    assert_eq!(pool.connections(), 1);

    // 50 first-time-concurrent requests on a fresh pool share one dial.
    let fresh = HbonePool::new(PoolConfig::default());
    let streams = futures::future::join_all((0..50).map(|_| fresh.connect(client.request(&server, ECHO)))).await;
    let mut streams: Vec<HboneStream> = streams.into_iter().map(Result::unwrap).collect();
    assert_eq!(fresh.connections(), 1);
    for (i, stream) in streams.iter_mut().enumerate() {
        stream.write_all(format!("stream {i}").as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        let mut back = String::new();
        within("echo", stream.read_to_string(&mut back)).await.unwrap();
        assert_eq!(back, format!("stream {i}"));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2, "one connection per pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limit_opens_another_connection() {
    let ca = certificate_authority();
    let server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig { max_streams_per_connection: 2, ..PoolConfig::default() });

    let first = pool.connect(client.request(&server, ECHO)).await.unwrap();
    let second = pool.connect(client.request(&server, ECHO)).await.unwrap();
    assert_eq!(pool.connections(), 1);
    let third = pool.connect(client.request(&server, ECHO)).await.unwrap();
    assert_eq!(pool.connections(), 2);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);

    // A slot freed on the first connection is used again instead of a third connection.
    drop(first);
    let fourth = pool.connect(client.request(&server, ECHO)).await.unwrap();
    assert_eq!(pool.connections(), 2);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    drop((second, third, fourth));

    // A server allowing fewer concurrent streams than the pool would open is respected too.
    let strict = TestServer::start(&ca, ServerConfig { max_concurrent_streams: 1, ..ServerConfig::default() }).await;
    let pool = HbonePool::new(PoolConfig::default());
    let _warm = echo_once(&pool, client.request(&strict, ECHO), b"learn the server's settings").await;
    let held = pool.connect(client.request(&strict, ECHO)).await.unwrap();
    let other = within("connect", pool.connect(client.request(&strict, ECHO))).await.unwrap();
    assert_eq!(pool.connections(), 2);
    drop((held, other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_connection_is_replaced() {
    let ca = certificate_authority();
    let server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    echo_once(&pool, client.request(&server, ECHO), b"before").await;
    server.kill_connections();
    // Right away, whether or not the pool has noticed yet: the next request gets a new one.
    echo_once(&pool, client.request(&server, ECHO), b"after").await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    within("the broken connection to leave the pool", async {
        while pool.connections() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_closes() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig { idle_timeout: Duration::from_millis(200), ..PoolConfig::default() });

    let stream = pool.connect(client.request(&server, ECHO)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pool.connections(), 1, "a connection with an open stream is not idle");
    drop(stream);
    within("the idle connection to close", async {
        while pool.connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The server sees a clean close (GOAWAY), not an error.
    assert_eq!(server.next_outcome().await, Ok(()));
    echo_once(&pool, client.request(&server, ECHO), b"new connection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejects_a_server_with_the_wrong_identity() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    let mut req = client.request(&server, ECHO);
    req.key.dst_identity = id("someone-else");
    let error = within("connect", pool.connect(req)).await.unwrap_err();
    assert!(matches!(error, HboneError::Tls { .. }), "{error}");
    assert!(
        error.to_string().contains("is not the expected spiffe://cluster.local/ns/shop/sa/someone-else"),
        "{error}"
    );
    assert_eq!(pool.connections(), 0);
    assert!(server.next_outcome().await.unwrap_err().starts_with("tls:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejects_a_client_certificate_from_another_root() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let stranger = certificate_authority();
    // Trusts the server's root but holds a certificate from another one.
    let client = Client { cert: issue(&stranger, &id("client")), roots: ca.roots().clone() };
    let pool = HbonePool::new(PoolConfig::default());

    let error = within("connect", pool.connect(client.request(&server, ECHO))).await.unwrap_err();
    // TLS 1.3 clients learn of the rejection after their side of the handshake completed.
    assert!(
        matches!(
            error,
            HboneError::Tls { .. }
                | HboneError::Handshake { .. }
                | HboneError::Connection { .. }
                | HboneError::Request { .. }
        ),
        "{error}"
    );
    let outcome = server.next_outcome().await.unwrap_err();
    // Same issuer name, other key: webpki reports the signature rather than the issuer.
    assert!(outcome.starts_with("tls: invalid peer certificate"), "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_surface_as_statuses_and_keep_the_connection() {
    let ca = certificate_authority();
    let server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    let error = within("connect", pool.connect(client.request(&server, DENY))).await.unwrap_err();
    assert!(matches!(error, HboneError::Status(401)), "{error}");
    let error = within("connect", pool.connect(client.request(&server, UNANSWERED))).await.unwrap_err();
    assert!(matches!(error, HboneError::Status(503)), "{error}");
    // Nothing listens on port 1 of the loopback: the server's upstream dial fails.
    let error = within("connect", pool.connect(client.request(&server, 1))).await.unwrap_err();
    assert!(matches!(error, HboneError::Status(503)), "{error}");
    let mut bad = client.request(&server, ECHO);
    bad.authority = "web.shop:80".into();
    assert!(matches!(pool.connect(bad).await.unwrap_err(), HboneError::InvalidAuthority(_)));
    echo_once(&pool, client.request(&server, ECHO), b"ok").await;
    assert_eq!(pool.connections(), 1);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

/// A TLS connection to the server with a valid client certificate, for speaking raw bytes.
async fn raw_tls(ca: &CertificateAuthority, server: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let client = Client::new(ca);
    let config = workload_client_config(&client.cert, client.roots.clone(), vec![server.identity.clone()]).unwrap();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    TlsConnector::from(config).connect(ServerName::IpAddress(server.addr.ip().into()), tcp).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_non_tunnel_requests_get_clean_errors() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;

    // Not even TLS.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4]).await.unwrap();
    tcp.write_all(b"\r\n\r\ngarbage garbage garbage").await.unwrap();
    let _ = within("close", tcp.read_to_end(&mut Vec::new())).await;
    assert!(server.next_outcome().await.unwrap_err().starts_with("tls:"));

    // TLS, then bytes that are not HTTP/2.
    let mut tls = raw_tls(&ca, &server).await;
    tls.write_all(&[0xde; 64]).await.unwrap();
    let _ = within("close", tls.read_to_end(&mut Vec::new())).await;
    let outcome = server.next_outcome().await.unwrap_err();
    assert!(outcome.contains("HTTP/2"), "{outcome}");

    // TLS, then HTTP/1.1.
    let mut tls = raw_tls(&ca, &server).await;
    tls.write_all(b"CONNECT 127.0.0.1:7 HTTP/1.1\r\nHost: 127.0.0.1:7\r\n\r\n").await.unwrap();
    let _ = within("close", tls.read_to_end(&mut Vec::new())).await;
    assert!(server.next_outcome().await.is_err());

    // HTTP/2, but not CONNECT, or CONNECT to a name rather than an address.
    let (mut h2, connection) = h2::client::handshake(raw_tls(&ca, &server).await).await.unwrap();
    tokio::spawn(connection);
    let get = http::Request::get("https://127.0.0.1/").body(()).unwrap();
    let (response, _) = h2.send_request(get, true).unwrap();
    assert_eq!(within("GET", response).await.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
    for authority in ["web.shop.svc:80", "127.0.0.1"] {
        let mut connect = http::Request::new(());
        *connect.method_mut() = http::Method::CONNECT;
        *connect.uri_mut() = authority.parse().unwrap();
        let (response, _) = h2.send_request(connect, false).unwrap();
        assert_eq!(within("CONNECT", response).await.unwrap().status(), StatusCode::BAD_REQUEST, "{authority}");
    }
    // The connection still serves tunnels.
    let mut connect = http::Request::new(());
    *connect.method_mut() = http::Method::CONNECT;
    *connect.uri_mut() = format!("127.0.0.1:{ECHO}").parse().unwrap();
    let (response, mut send) = h2.send_request(connect, false).unwrap();
    let response = within("CONNECT", response).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    send.send_data(Bytes::from_static(b"raw"), true).unwrap();
    let mut body = response.into_body();
    let data = within("echo", body.data()).await.unwrap().unwrap();
    assert_eq!(&data[..], b"raw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_without_disturbing_other_streams() {
    let ca = certificate_authority();
    let server =
        TestServer::start(&ca, ServerConfig { max_header_list_size: 8 * 1024, ..ServerConfig::default() }).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    let mut open = pool.connect(client.request(&server, ECHO)).await.unwrap();
    open.write_all(b"first half,").await.unwrap();

    let mut big = client.request(&server, ECHO);
    big.headers.insert("x-big", "a".repeat(20 * 1024).parse().unwrap());
    let error = within("connect", pool.connect(big)).await.unwrap_err();
    assert!(matches!(error, HboneError::Status(431)), "{error}");

    open.write_all(b" second half").await.unwrap();
    open.shutdown().await.unwrap();
    let mut back = String::new();
    within("echo", open.read_to_string(&mut back)).await.unwrap();
    assert_eq!(back, "first half, second half");
    echo_once(&pool, client.request(&server, ECHO), b"after").await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    // Far over the limit is abuse: h2 drops the whole connection (GOAWAY ENHANCE_YOUR_CALM).
    // The request is not retried elsewhere, and the pool recovers on a new connection.
    let mut abusive = client.request(&server, ECHO);
    abusive.headers.insert("x-huge", "a".repeat(64 * 1024).parse().unwrap());
    let error = within("connect", pool.connect(abusive)).await.unwrap_err();
    assert!(matches!(error, HboneError::Request { .. }), "{error}");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    echo_once(&pool, client.request(&server, ECHO), b"recovered").await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

/// Deterministic pseudo-random bytes (xorshift), so corruption or reordering shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_moves_megabytes_intact_both_ways() {
    let ca = certificate_authority();
    let mut server = TestServer::start(&ca, ServerConfig::default()).await;
    let client = Client::new(&ca);
    let pool = HbonePool::new(PoolConfig::default());

    // The destination: answers with its own pattern, then echoes what it got, then closes.
    const UP: usize = 3 * 1024 * 1024 + 17;
    const DOWN: usize = 2 * 1024 * 1024 + 5;
    let destination = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = destination.local_addr().unwrap().port();
    let destination = tokio::spawn(async move {
        let (mut tcp, _) = destination.accept().await.unwrap();
        let (mut read, mut write) = tcp.split();
        let send = async {
            write.write_all(&pattern(DOWN, 2)).await.unwrap();
            write.shutdown().await.unwrap();
        };
        let mut received = Vec::new();
        let receive = read.read_to_end(&mut received);
        let (_, got) = tokio::join!(send, receive);
        got.unwrap();
        received
    });

    // The source application's TCP connection, bridged into the tunnel as ztunnel would.
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_addr = local.local_addr().unwrap();
    let tunnel = pool.connect(client.request(&server, port));
    let app = TcpStream::connect(local_addr);
    let ((accepted, _), tunnel, mut app) = {
        let (a, t, c) = tokio::join!(local.accept(), tunnel, app);
        (a.unwrap(), t.unwrap(), c.unwrap())
    };
    let source_bridge = tokio::spawn(bridge(accepted, tunnel));

    let (mut read, mut write) = app.split();
    let upload = async {
        write.write_all(&pattern(UP, 1)).await.unwrap();
        write.shutdown().await.unwrap();
    };
    let mut downloaded = Vec::new();
    let download = read.read_to_end(&mut downloaded);
    let (_, got) = within("the transfer", async { tokio::join!(upload, download) }).await;
    assert_eq!(got.unwrap(), DOWN);
    assert!(downloaded == pattern(DOWN, 2), "download corrupted");
    let received = within("the destination", destination).await.unwrap();
    assert_eq!(received.len(), UP);
    assert!(received == pattern(UP, 1), "upload corrupted");

    let counts = within("the source bridge", source_bridge).await.unwrap().unwrap();
    assert_eq!(counts, (UP as u64, DOWN as u64));
    assert_eq!(server.next_end().await, format!("bridge Ok(({DOWN}, {UP}))"));
}
