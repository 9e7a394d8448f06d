//! ztunnel's three HTTP/1.1 + h2c endpoints, on Istio's ports:
//! - admin (default 127.0.0.1:15000, loopback only: `/config_dump` reveals the node's whole view
//!   of the mesh): `/`, `/config_dump`, `/healthz/ready`, `/metrics`;
//! - metrics (default 0.0.0.0:15020, scraped by Prometheus): `/metrics`, `/stats/prometheus`;
//! - readiness (default 0.0.0.0:15021, probed by the kubelet): `/healthz/ready`.
//!
//! Each server is a task owning its listener and its connections; [`AdminServers::shutdown`] (or
//! dropping it) stops all of them.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

#[cfg(test)]
mod tests;

/// Where the endpoints listen; port 0 picks a free port (tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    pub readiness: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            admin: SocketAddr::from((Ipv4Addr::LOCALHOST, 15000)),
            metrics: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 15020)),
            readiness: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 15021)),
        }
    }
}

/// Produces the `/config_dump` document on each request.
pub type ConfigDump = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on the {endpoint} address {address}: {source}")]
    Bind { endpoint: &'static str, address: SocketAddr, source: std::io::Error },
}

/// The running servers and the addresses they actually bound.
#[must_use = "dropping AdminServers stops the servers"]
pub struct AdminServers {
    pub admin_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub readiness_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl AdminServers {
    /// Stops accepting and closes every open connection.
    pub fn shutdown(self) {
        // Drop does the work.
    }
}

impl Drop for AdminServers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the handlers read.
struct Sources {
    dump: ConfigDump,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Admin,
    Metrics,
    Readiness,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Admin => "admin",
            Endpoint::Metrics => "metrics",
            Endpoint::Readiness => "readiness",
        }
    }
}

/// Binds all three addresses (all or nothing) and starts serving. `ready` is true once ztunnel
/// can serve traffic.
pub async fn start(
    config: AdminConfig,
    dump: ConfigDump,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
) -> Result<AdminServers, AdminError> {
    let admin = bind(Endpoint::Admin, config.admin).await?;
    let metrics = bind(Endpoint::Metrics, config.metrics).await?;
    let readiness = bind(Endpoint::Readiness, config.readiness).await?;
    let sources = Arc::new(Sources { dump, registry, ready });
    let mut servers =
        AdminServers { admin_addr: admin.1, metrics_addr: metrics.1, readiness_addr: readiness.1, tasks: Vec::new() };
    for (endpoint, (listener, address)) in
        [(Endpoint::Admin, admin), (Endpoint::Metrics, metrics), (Endpoint::Readiness, readiness)]
    {
        tracing::info!(endpoint = endpoint.name(), %address, "serving");
        servers.tasks.push(tokio::spawn(serve(endpoint, listener, sources.clone())));
    }
    Ok(servers)
}

async fn bind(endpoint: Endpoint, address: SocketAddr) -> Result<(TcpListener, SocketAddr), AdminError> {
    let error = |source| AdminError::Bind { endpoint: endpoint.name(), address, source };
    let listener = TcpListener::bind(address).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// Accepts until aborted. Connections live in a JoinSet owned by this task, so aborting the task
/// also ends them.
async fn serve(endpoint: Endpoint, listener: TcpListener, sources: Arc<Sources>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(endpoint = endpoint.name(), %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let sources = sources.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(route(endpoint, &sources, &request)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(endpoint = endpoint.name(), %peer, %error, "connection ended with an error");
            }
        });
    }
}

fn route(endpoint: Endpoint, sources: &Sources, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n".to_string());
    }
    let path = request.uri().path();
    match (endpoint, path) {
        (Endpoint::Admin | Endpoint::Readiness, "/healthz/ready") => readiness(&sources.ready),
        (Endpoint::Admin, "/metrics") | (Endpoint::Metrics, "/metrics" | "/stats/prometheus") => {
            metrics(&sources.registry, request)
        }
        (Endpoint::Admin, "/config_dump") => json((sources.dump)()),
        (Endpoint::Admin, "/") => text(StatusCode::OK, "/config_dump\n/healthz/ready\n/metrics\n".to_string()),
        _ => text(StatusCode::NOT_FOUND, format!("no endpoint {path}\n")),
    }
}

fn readiness(ready: &watch::Receiver<bool>) -> Response<Full<Bytes>> {
    if *ready.borrow() {
        text(StatusCode::OK, "ready\n".to_string())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the initial workload configuration, certificates and pod snapshot\n".to_string(),
        )
    }
}

/// OpenMetrics when the scraper asks for it (Prometheus does), plain Prometheus text otherwise;
/// the body is the same, OpenMetrics being a superset the Prometheus text parsers accept.
fn metrics(registry: &Registry, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut out = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut out, registry) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {error}\n"));
    }
    let openmetrics = request
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(out)))
        .expect("static response parts are valid")
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
