//! The debug and metrics endpoint (default 127.0.0.1:15014): `/healthz/ready`, `/metrics`,
//! `/debug/syncz`, `/debug/config_dump`, `/debug/registryz`. Plain HTTP/1.1 on loopback by
//! default; it reveals the mesh's topology, so bind it elsewhere only on purpose.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::registryz;
use crate::mesh::Mesh;

/// A JSON document computed on request.
pub type JsonSource = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the endpoints read.
#[derive(Clone)]
pub struct DebugSources {
    /// True once the config store has synced and the xDS state is built from it.
    pub ready: watch::Receiver<bool>,
    pub mesh: Mesh,
    pub registry: Arc<Registry>,
    pub syncz: JsonSource,
    pub config_dump: JsonSource,
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, sources: DebugSources) {
    let sources = Arc::new(sources);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "debug endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(route(&sources, request)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, %error, "debug endpoint: connection ended with an error");
            }
        });
    }
}

/// Binds the debug address; the error names the address.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on debug address {address}: {e}")))
}

fn route(sources: &DebugSources, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n".to_string());
    }
    match request.uri().path() {
        "/healthz/ready" | "/ready" => {
            if *sources.ready.borrow() {
                text(StatusCode::OK, "ready\n".to_string())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the configuration has not synced yet\n".to_string())
            }
        }
        "/metrics" => {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, &sources.registry) {
                Ok(()) => Response::builder()
                    .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                    .body(Full::new(Bytes::from(out)))
                    .expect("static response parts are valid"),
                Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {error}\n")),
            }
        }
        "/debug/syncz" => json((sources.syncz)()),
        "/debug/config_dump" => json((sources.config_dump)()),
        "/debug/registryz" => json(sources.mesh.read(registryz::view)),
        "/" | "/debug" => text(
            StatusCode::OK,
            "/healthz/ready\n/metrics\n/debug/syncz\n/debug/config_dump\n/debug/registryz\n".to_string(),
        ),
        path => text(StatusCode::NOT_FOUND, format!("no endpoint {path}; see /debug\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
