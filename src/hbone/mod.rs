//! HBONE: HTTP/2 CONNECT tunnels over mutual TLS, client pool and server.
//!
//! The wire protocol is Istio's: TCP to port 15008, TLS 1.3 with ALPN `h2` where the client
//! presents its workload certificate and checks the server's SPIFFE identity, then plain HTTP/2
//! with one `CONNECT` stream per proxied TCP connection (`:authority` = the destination
//! `ip:port`, no `:scheme`/`:path`). The server answers 200 to open the tunnel, 401 when policy
//! denies it, 400/503 on errors. Tunnel payload is the DATA of the stream; END_STREAM is a TCP
//! half-close and RST_STREAM a TCP reset (RFC 9113 section 8.5).
//!
//! - [`pool`]: [`HbonePool`], reusing connections per [`PoolKey`] up to a stream limit;
//! - [`client`]: dialing (TCP via the caller's [`Dialer`], TLS, h2 handshake) and the CONNECT;
//! - [`server`]: [`serve_connection`] for one accepted TLS connection, an [`InboundHandler`]
//!   deciding per stream through a [`Responder`];
//! - [`stream`]: [`HboneStream`], one tunnel as `AsyncRead + AsyncWrite`;
//! - [`bridge`]: [`bridge`], the zero-copy data path between a TCP socket and a tunnel;
//! - [`headers`]: Istio's `forwarded` and `baggage` request headers.

pub mod bridge;
pub mod client;
pub mod headers;
pub mod pool;
pub mod server;
pub mod stream;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;

use crate::model::Identity;
use crate::tls::{CertificateError, TrustRoots, WorkloadCertificate};

pub use self::bridge::{BridgeCounters, bridge, bridge_counted};
pub use self::pool::HbonePool;
pub use self::server::{
    InboundHandler, InboundRequest, Responder, ServerConfig, serve_connection, serve_connection_until,
};
pub use self::stream::HboneStream;

/// Istio's HBONE port.
pub const HBONE_PORT: u16 = 15008;

/// Per-stream HTTP/2 receive window: large, so one stream can fill a fast link without waiting
/// for WINDOW_UPDATEs (Istio's default).
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Per-connection receive window: several streams' worth, so one busy stream cannot starve the
/// others of connection-level credit.
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest DATA frame we accept: big frames mean fewer frame headers and wakeups on bulk
/// transfers.
pub const MAX_FRAME_SIZE: u32 = 1024 * 1024;
/// Largest header block a client accepts in a response (responses carry few headers).
pub const CLIENT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// How often an HBONE connection's peer is pinged, to find peers that vanished without closing
/// (a node gone, a network partition) rather than wait for TCP to give up (Istio's values).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Pings the peer every [`KEEPALIVE_INTERVAL`]; returns why the connection should be dropped
/// (no pong within [`KEEPALIVE_TIMEOUT`], or the ping failed). Only progresses while the
/// connection itself is polled.
pub(crate) async fn keepalive(ping_pong: Option<h2::PingPong>) -> String {
    let Some(mut ping_pong) = ping_pong else { return std::future::pending().await };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => continue,
            Ok(Err(error)) => return format!("keepalive ping failed: {error}"),
            Err(_) => return format!("no keepalive pong within {KEEPALIVE_TIMEOUT:?}"),
        }
    }
}

/// Which pooled connections may carry a request: same source (network namespace and identity),
/// same destination address and expected identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Inode of the source network namespace the connection is dialed from; 0 = ztunnel's own.
    pub source: u64,
    pub src_identity: Identity,
    pub dst_identity: Identity,
    /// Where the connection goes: the HBONE endpoint (usually `<pod ip>:15008`).
    pub dst: SocketAddr,
}

/// Opens the TCP connection under a tunnel (in the right network namespace, with the right
/// socket options). TCP_NODELAY is the dialer's job.
pub type Dialer = Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> + Send + Sync>;

/// One tunnel to open.
#[derive(Clone)]
pub struct ConnectRequest {
    pub key: PoolKey,
    /// The source workload's certificate, presented to the server; its identity should be
    /// `key.src_identity`.
    pub cert: Arc<WorkloadCertificate>,
    /// What the server's certificate must chain to.
    pub roots: TrustRoots,
    /// The CONNECT target: `ip:port` or `[v6]:port`.
    pub authority: String,
    /// Extra request headers (`forwarded`, `baggage`, `traceparent`...).
    pub headers: http::HeaderMap,
    pub dial: Dialer,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("key", &self.key)
            .field("authority", &self.authority)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// How the pool uses connections.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Streams a connection carries at once before another connection is opened (Istio: 100).
    pub max_streams_per_connection: u32,
    /// A connection without streams for this long is closed (Istio: 5 minutes).
    pub idle_timeout: Duration,
    /// Limit for opening a connection: TCP, TLS and the HTTP/2 handshake together.
    pub connect_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_streams_per_connection: 100,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a tunnel could not be opened or served.
#[derive(Debug, thiserror::Error)]
pub enum HboneError {
    #[error("HBONE: connecting to {dst}: {source}")]
    Connect { dst: SocketAddr, source: io::Error },
    #[error("HBONE: connecting to {dst} took longer than {timeout:?}")]
    ConnectTimeout { dst: SocketAddr, timeout: Duration },
    #[error("HBONE: connecting to {dst} failed for a concurrent request to the same destination: {error}")]
    SharedConnectFailed { dst: SocketAddr, error: String },
    #[error("HBONE: TLS configuration: {0}")]
    TlsConfig(#[from] crate::tls::ConfigError),
    #[error("HBONE: TLS handshake with {peer}: {source}")]
    Tls { peer: SocketAddr, source: io::Error },
    #[error("HBONE: {peer} did not negotiate ALPN h2")]
    NoAlpn { peer: SocketAddr },
    #[error("HBONE: {peer} presented no client certificate")]
    NoPeerCertificate { peer: SocketAddr },
    #[error("HBONE: the client certificate of {peer} has no usable identity: {source}")]
    PeerIdentity { peer: SocketAddr, source: CertificateError },
    #[error("HBONE: HTTP/2 handshake with {peer}: {source}")]
    Handshake { peer: SocketAddr, source: h2::Error },
    #[error("HBONE: HTTP/2 connection with {peer}: {source}")]
    Connection { peer: SocketAddr, source: h2::Error },
    #[error("HBONE: dropping the connection with {peer}: {why}")]
    PeerUnresponsive { peer: SocketAddr, why: String },
    #[error("HBONE: CONNECT {authority} via {peer}: {source}")]
    Request { peer: SocketAddr, authority: String, source: h2::Error },
    #[error("HBONE: invalid CONNECT authority {0:?}: expected ip:port or [ipv6]:port")]
    InvalidAuthority(String),
    #[error("HBONE: CONNECT rejected with status {}", status_text(*.0))]
    Status(u16),
    #[error("HBONE: responding on the stream: {0}")]
    Respond(h2::Error),
}

fn status_text(code: u16) -> String {
    match http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

impl HboneError {
    /// The request never reached a server that processed it (the pooled connection was
    /// already broken, or the server refused the stream), so opening it again elsewhere is
    /// safe: a CONNECT carries no payload before it is answered.
    pub(crate) fn is_retryable_on_new_connection(&self) -> bool {
        match self {
            // Raised before the request was sent: the pooled connection was closing or gone.
            HboneError::Connection { .. } => true,
            HboneError::Request { source, .. } => {
                // A graceful GOAWAY refuses the streams it did not process; an error GOAWAY
                // may have been caused by this very request, which must not be sent again.
                source.is_io()
                    || (source.is_go_away() && source.reason() == Some(h2::Reason::NO_ERROR))
                    || source.reason() == Some(h2::Reason::REFUSED_STREAM)
            }
            _ => false,
        }
    }
}

/// An h2 error as an I/O error: resets become `ConnectionReset`, transport errors keep their
/// kind.
pub(crate) fn h2_to_io(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error.into_io().unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    if error.is_reset() || error.is_go_away() {
        return io::Error::new(io::ErrorKind::ConnectionReset, error);
    }
    io::Error::other(error)
}
