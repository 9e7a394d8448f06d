//! The server side of HBONE: one task per accepted connection (the caller's, running
//! [`serve_connection`]) and one task per CONNECT stream, where an [`InboundHandler`] decides
//! through a [`Responder`]: accept (200 and a tunnel) or reject (401 on a policy denial, 4xx/5xx
//! on errors).
//!
//! Requests that are not tunnels are answered here without reaching the handler: a method other
//! than CONNECT gets 405, an authority that is not `ip:port` gets 400. Oversized header blocks
//! are refused by h2 itself (431 and a stream reset), leaving the other streams alone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use h2::RecvStream;
use h2::server::SendResponse;
use http::StatusCode;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::{CONNECTION_WINDOW, HboneError, HboneStream, MAX_FRAME_SIZE, STREAM_WINDOW};
use crate::model::Identity;
use crate::tls::spiffe_identity;

/// HTTP/2 settings of the server side.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest request header block accepted (SETTINGS_MAX_HEADER_LIST_SIZE); larger requests
    /// get 431 and a reset.
    pub max_header_list_size: u32,
    pub stream_window: u32,
    pub connection_window: u32,
    pub max_frame_size: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // Above the clients' per-connection pool limit (100), so the pool's limit is what
            // opens further connections.
            max_concurrent_streams: 200,
            // CONNECT requests carry a handful of short headers; 64 KiB is plenty.
            max_header_list_size: 64 * 1024,
            stream_window: STREAM_WINDOW,
            connection_window: CONNECTION_WINDOW,
            max_frame_size: MAX_FRAME_SIZE,
        }
    }
}

/// A CONNECT request, for the handler to authorize and serve.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    /// The `:authority` as sent.
    pub authority: String,
    /// The authority as an address: where the client wants to go.
    pub destination: SocketAddr,
    pub headers: http::HeaderMap,
    /// The client's identity, from its verified certificate.
    pub peer_identity: Identity,
    pub peer_addr: SocketAddr,
    pub local_addr: SocketAddr,
}

/// The answer to one CONNECT. Dropped unanswered (the handler returned or panicked without
/// deciding), it answers 503.
pub struct Responder {
    respond: Option<SendResponse<Bytes>>,
    recv: Option<RecvStream>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("answered", &self.respond.is_none()).finish()
    }
}

fn response(status: StatusCode, headers: http::HeaderMap) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

impl Responder {
    fn new(respond: SendResponse<Bytes>, recv: RecvStream) -> Self {
        Responder { respond: Some(respond), recv: Some(recv) }
    }

    /// Refuses the tunnel with `status` (401 when policy denies, 503 when the destination is
    /// unreachable...) and ends the stream.
    pub fn reject(mut self, status: StatusCode) {
        if let Some(mut respond) = self.respond.take() {
            // Fails only when the client already reset the stream: nobody to tell.
            let _ = respond.send_response(response(status, http::HeaderMap::new()), true);
        }
    }

    /// Opens the tunnel: answers 200 and returns the stream.
    pub fn accept(self) -> Result<HboneStream, HboneError> {
        self.accept_with_headers(http::HeaderMap::new())
    }

    /// Opens the tunnel with extra response headers (e.g. `baggage`).
    pub fn accept_with_headers(mut self, headers: http::HeaderMap) -> Result<HboneStream, HboneError> {
        let (Some(mut respond), Some(recv)) = (self.respond.take(), self.recv.take()) else {
            unreachable!("a Responder is answered only once: accept and reject consume it")
        };
        let send = respond.send_response(response(StatusCode::OK, headers), false).map_err(HboneError::Respond)?;
        Ok(HboneStream::new(send, recv, http::HeaderMap::new(), None))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(mut respond) = self.respond.take() {
            let _ = respond.send_response(response(StatusCode::SERVICE_UNAVAILABLE, http::HeaderMap::new()), true);
        }
    }
}

/// Decides and serves CONNECT requests. `handle` runs in a task of its own per stream; it
/// answers through the responder and, once accepted, moves the tunnel's bytes (see
/// [`super::bridge`]) before returning.
pub trait InboundHandler: Send + Sync + 'static {
    fn handle(&self, req: InboundRequest, responder: Responder) -> BoxFuture<'static, ()>;
}

/// Serves one accepted HBONE connection until the client closes it. See
/// [`serve_connection_until`].
pub async fn serve_connection(
    tls: TlsStream<TcpStream>,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: ServerConfig,
) -> Result<(), HboneError> {
    serve_connection_until(tls, peer_addr, local_addr, handler, config, std::future::pending()).await
}

/// Serves one accepted HBONE connection: the client's identity from its verified certificate,
/// the HTTP/2 handshake, then a task per CONNECT stream. When `shutdown` completes, sends
/// GOAWAY and keeps serving the open streams until they end. Returns `Ok` when the connection
/// closed cleanly, an error when it could not be set up or broke.
pub async fn serve_connection_until(
    tls: TlsStream<TcpStream>,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HboneError> {
    let peer_identity = {
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or(HboneError::NoPeerCertificate { peer: peer_addr })?;
        spiffe_identity(leaf).map_err(|source| HboneError::PeerIdentity { peer: peer_addr, source })?
    };

    let mut connection = h2::server::Builder::new()
        .initial_window_size(config.stream_window)
        .initial_connection_window_size(config.connection_window)
        .max_frame_size(config.max_frame_size)
        .max_header_list_size(config.max_header_list_size)
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_send_buffer_size(config.stream_window as usize)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|source| HboneError::Handshake { peer: peer_addr, source })?;

    let keepalive = super::keepalive(connection.ping_pong());
    tokio::pin!(shutdown, keepalive);
    let mut draining = false;
    loop {
        tokio::select! {
            next = connection.accept() => match next {
                None => return Ok(()),
                Some(Ok((request, respond))) => {
                    let stream = StreamContext {
                        peer_identity: peer_identity.clone(),
                        peer_addr,
                        local_addr,
                        handler: handler.clone(),
                    };
                    tokio::spawn(stream.serve(request, respond));
                }
                Some(Err(source)) => return Err(HboneError::Connection { peer: peer_addr, source }),
            },
            why = &mut keepalive => {
                connection.abrupt_shutdown(h2::Reason::NO_ERROR);
                return Err(HboneError::PeerUnresponsive { peer: peer_addr, why });
            }
            () = &mut shutdown, if !draining => {
                debug!(peer = %peer_addr, "HBONE: draining connection");
                draining = true;
                connection.graceful_shutdown();
            }
        }
    }
}

/// What a stream's task needs from its connection.
struct StreamContext {
    peer_identity: Identity,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    handler: Arc<dyn InboundHandler>,
}

impl StreamContext {
    async fn serve(self, request: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
        let (parts, recv) = request.into_parts();
        let refuse = |respond: &mut SendResponse<Bytes>, status: StatusCode, why: &str| {
            debug!(peer = %self.peer_addr, method = %parts.method, uri = %parts.uri, status = status.as_u16(), "HBONE: {why}");
            let _ = respond.send_response(response(status, http::HeaderMap::new()), true);
        };
        if parts.method != http::Method::CONNECT {
            return refuse(&mut respond, StatusCode::METHOD_NOT_ALLOWED, "not a CONNECT request");
        }
        let Some(authority) = parts.uri.authority().map(|a| a.as_str().to_string()) else {
            return refuse(&mut respond, StatusCode::BAD_REQUEST, "CONNECT without an authority");
        };
        let Ok(destination) = authority.parse::<SocketAddr>() else {
            return refuse(&mut respond, StatusCode::BAD_REQUEST, "CONNECT authority is not ip:port");
        };
        let request = InboundRequest {
            authority,
            destination,
            headers: parts.headers,
            peer_identity: self.peer_identity,
            peer_addr: self.peer_addr,
            local_addr: self.local_addr,
        };
        self.handler.handle(request, Responder::new(respond, recv)).await;
    }
}
