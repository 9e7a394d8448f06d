//! HBONE in process over loopback: an `HbonePool` client and a TLS listener running
//! `serve_connection` with an echo handler, both on one 2-worker runtime (as ztunnel's data
//! plane on a 2-core node), certificates from the control plane's CA.
//!
//! - `stream_on_pooled_connection`: `HbonePool::connect` on the pool's established connection
//!   (a new HTTP/2 CONNECT stream), 1 byte each way, then close from both ends;
//! - `first_connection`: the same from an empty pool: TCP, TLS 1.3 with client certificate
//!   and HTTP/2 handshakes come first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ambient::controlplane::ca::{CertificateAuthority, PemSource, SigningMaterial, generate_root};
use ambient::hbone::{
    ConnectRequest, Dialer, HbonePool, InboundHandler, InboundRequest, PoolConfig, PoolKey, Responder, ServerConfig,
    serve_connection,
};
use ambient::model::Identity;
use ambient::tls::{WorkloadCertificate, workload_server_config};
use criterion::{BenchmarkId, Criterion};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const TRUST_DOMAIN: &str = "cluster.local";

fn identity(service_account: &str) -> Identity {
    Identity::new(TRUST_DOMAIN, "bench", service_account).expect("valid identity")
}

fn certificate_authority() -> CertificateAuthority {
    let (cert, key) = generate_root(TRUST_DOMAIN).expect("root certificate");
    CertificateAuthority::new(&SigningMaterial {
        cert: PemSource::new("root-cert.pem", cert),
        key: PemSource::new("root-key.pem", key),
        chain: None,
        root: None,
    })
    .expect("CA")
}

fn issue(ca: &CertificateAuthority, identity: &Identity) -> Arc<WorkloadCertificate> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key pair");
    let chain = ca.issue(&key.subject_public_key_info(), identity, Duration::from_secs(3600)).expect("certificate");
    Arc::new(WorkloadCertificate::from_pem(&key.serialize_pem(), &chain).expect("workload certificate"))
}

/// Accepts every tunnel and echoes it until the client closes, then closes its side.
struct Echo;

impl InboundHandler for Echo {
    fn handle(&self, _req: InboundRequest, responder: Responder) -> BoxFuture<'static, ()> {
        async move {
            let Ok(stream) = responder.accept() else { return };
            let (mut read, mut write) = tokio::io::split(stream);
            let _ = tokio::io::copy(&mut read, &mut write).await;
            let _ = write.shutdown().await;
        }
        .boxed()
    }
}

/// Starts the HBONE server on 127.0.0.1; returns its address. It runs until the runtime ends.
async fn start_server(ca: &CertificateAuthority, server: &Identity) -> SocketAddr {
    let tls = workload_server_config(&issue(ca, server), ca.roots().clone(), TRUST_DOMAIN).expect("server TLS");
    let acceptor = TlsAcceptor::from(tls);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let handler: Arc<dyn InboundHandler> = Arc::new(Echo);
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = serve_connection(tls, peer, addr, handler, ServerConfig::default()).await;
                }
            });
        }
    });
    addr
}

fn loopback_dialer() -> Dialer {
    Arc::new(|dst: SocketAddr| {
        async move {
            assert!(dst.ip().is_loopback(), "the benchmark dials loopback only, not {dst}");
            let tcp = TcpStream::connect(dst).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        }
        .boxed()
    })
}

/// Opens a tunnel, sends a byte, reads it back, closes our side and waits for the server's
/// close: the whole life of a minimal proxied connection.
async fn one_byte_round_trip(pool: &HbonePool, req: ConnectRequest) {
    let mut stream = pool.connect(req).await.expect("tunnel opens");
    stream.write_all(b"x").await.expect("write");
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.expect("echo");
    stream.shutdown().await.expect("half-close");
    assert_eq!(stream.read(&mut byte).await.expect("server's close"), 0, "end of stream");
}

pub fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let ca = certificate_authority();
    let (client, server) = (identity("client"), identity("server"));
    let cert = issue(&ca, &client);
    let addr = runtime.block_on(start_server(&ca, &server));
    let req = ConnectRequest {
        key: PoolKey { source: 0, src_identity: client, dst_identity: server, dst: addr },
        cert,
        roots: ca.roots().clone(),
        authority: "127.0.0.1:7".into(),
        headers: http::HeaderMap::new(),
        dial: loopback_dialer(),
    };

    let mut group = c.benchmark_group("hbone");
    let pool = HbonePool::new(PoolConfig::default());
    // Establishes the pooled connection, outside the measurement.
    runtime.block_on(one_byte_round_trip(&pool, req.clone()));
    assert_eq!(pool.connections(), 1);
    group.bench_function(BenchmarkId::from_parameter("stream_on_pooled_connection"), |b| {
        b.to_async(&runtime).iter(|| one_byte_round_trip(&pool, req.clone()))
    });
    assert_eq!(pool.connections(), 1, "every stream reused the pooled connection");

    // Each iteration opens (and leaves in TIME_WAIT) a TCP connection; a handshake takes
    // milliseconds: fewer samples.
    group.sample_size(30);
    group.bench_function(BenchmarkId::from_parameter("first_connection"), |b| {
        b.to_async(&runtime).iter(|| async {
            // Zero idle timeout: the connection closes as soon as its stream ends, instead of
            // thousands of them staying open for the default 5 minutes.
            let pool = HbonePool::new(PoolConfig { idle_timeout: Duration::ZERO, ..PoolConfig::default() });
            one_byte_round_trip(&pool, req.clone()).await
        })
    });
    group.finish();
    // Ends the server and the pools' connections.
    runtime.shutdown_timeout(Duration::from_secs(1));
}
