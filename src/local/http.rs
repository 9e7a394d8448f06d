//! A minimal HTTP/1.0 GET for the components' own endpoints, which are always plain HTTP on
//! `127.0.0.1`: readiness checks and `local metrics`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::LocalError;

/// GETs `url` (`http://HOST:PORT/path`) and returns the status code and body.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, String), LocalError> {
    let failed = |message: String| LocalError::Failed(format!("GET {url}: {message}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| failed("only http:// URLs are supported".into()))?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed(format!("not an HTTP answer: {:?}", head.lines().next().unwrap_or(""))))?;
    Ok((status, body.to_string()))
}

/// Whether `url` answers 200 within a second.
pub async fn is_ready(url: &str) -> bool {
    matches!(get(url, Duration::from_secs(1)).await, Ok((200, _)))
}
