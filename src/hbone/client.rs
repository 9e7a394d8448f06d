//! The client side of one HBONE connection: dialing (TCP through the caller's dialer, mTLS
//! with the source's certificate and the expected destination identity, the HTTP/2 handshake)
//! and sending a CONNECT on it. The pool decides which connection a request goes on.

use std::net::SocketAddr;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use h2::{RecvStream, SendStream};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{
    CLIENT_MAX_HEADER_LIST_SIZE, CONNECTION_WINDOW, ConnectRequest, HboneError, MAX_FRAME_SIZE, STREAM_WINDOW,
};
use crate::tls::config::ALPN_H2;
use crate::tls::workload_client_config;

/// The HTTP/2 connection future the pool drives in a task of its own.
pub(crate) type ClientConnection = Connection<TlsStream<TcpStream>, Bytes>;

/// A freshly established HBONE connection.
pub(crate) struct Dialed {
    pub sender: SendRequest<Bytes>,
    pub connection: ClientConnection,
}

fn builder(max_streams: u32) -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        // Until the server's SETTINGS arrive, assume it takes what the pool will send.
        .initial_max_send_streams(max_streams as usize)
        .max_header_list_size(CLIENT_MAX_HEADER_LIST_SIZE)
        // One window's worth: enough to keep a stream's window full without queueing more.
        .max_send_buffer_size(STREAM_WINDOW as usize)
        .enable_push(false);
    builder
}

/// Opens a connection for `req.key`: TCP via `req.dial`, TLS 1.3 presenting `req.cert` and
/// requiring `req.key.dst_identity`, ALPN h2, then the HTTP/2 handshake.
pub(crate) async fn dial(req: &ConnectRequest, max_streams: u32) -> Result<Dialed, HboneError> {
    let dst = req.key.dst;
    let tcp = (req.dial)(dst).await.map_err(|source| HboneError::Connect { dst, source })?;
    let config = workload_client_config(&req.cert, req.roots.clone(), vec![req.key.dst_identity.clone()])?;
    // The server is verified by identity, not name; an IP name keeps SNI off the wire.
    let name = ServerName::IpAddress(dst.ip().into());
    let tls =
        TlsConnector::from(config).connect(name, tcp).await.map_err(|source| HboneError::Tls { peer: dst, source })?;
    if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
        return Err(HboneError::NoAlpn { peer: dst });
    }
    let (sender, connection) =
        builder(max_streams).handshake(tls).await.map_err(|source| HboneError::Handshake { peer: dst, source })?;
    Ok(Dialed { sender, connection })
}

/// The CONNECT request for `authority` with `headers`. HTTP/2 CONNECT carries `:method` and
/// `:authority` only (RFC 9113 section 8.5); h2 leaves out `:scheme` and `:path` for it.
pub(crate) fn connect_request(authority: &str, headers: &http::HeaderMap) -> Result<http::Request<()>, HboneError> {
    let invalid = || HboneError::InvalidAuthority(authority.to_string());
    authority.parse::<SocketAddr>().map_err(|_| invalid())?;
    let uri: http::Uri = authority.parse().map_err(|_| invalid())?;
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::CONNECT;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    *request.headers_mut() = headers.clone();
    Ok(request)
}

/// Sends `request` on the connection of `sender` (to `peer`) and waits for the answer: the
/// stream halves and response headers on 200, [`HboneError::Status`] otherwise.
pub(crate) async fn send_connect(
    sender: SendRequest<Bytes>,
    peer: SocketAddr,
    request: http::Request<()>,
) -> Result<(SendStream<Bytes>, RecvStream, http::HeaderMap), HboneError> {
    let authority = request.uri().to_string();
    // Not ready = the connection is closing (GOAWAY) or gone.
    let mut sender = sender.ready().await.map_err(|source| HboneError::Connection { peer, source })?;
    let request_error = |source| HboneError::Request { peer, authority: authority.clone(), source };
    let (response, send) = sender.send_request(request, false).map_err(request_error)?;
    let response = response.await.map_err(request_error)?;
    if response.status() != http::StatusCode::OK {
        // Dropping `send` resets whatever the server left open.
        return Err(HboneError::Status(response.status().as_u16()));
    }
    let (parts, recv) = response.into_parts();
    Ok((send, recv, parts.headers))
}
