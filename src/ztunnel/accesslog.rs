//! The connection access log: one line per connection, written when it closes (see
//! [`super::metrics::ConnectionRecord`]), as `key=value` text or as a JSON object.
//!
//! Lines go to an [`AccessLogSink`]. The default, [`StdoutSink`], writes each complete line to
//! stdout itself rather than through `tracing`: the operator picks the access-log format
//! independently of the diagnostic log's format and filter, a log filter must not be able to drop
//! access lines silently, and tests can swap in a [`MemorySink`] without installing a global
//! subscriber. Each line is written with a single `write_all` under stdout's lock, so lines from
//! concurrent connections never interleave.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::metrics::{Reporter, ResponseFlags};
use crate::model::Identity;

#[cfg(test)]
mod tests;

/// How access-log lines are written. `Off` writes nothing at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLogFormat {
    Off,
    #[default]
    Text,
    Json,
}

impl AccessLogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLogFormat::Off => "off",
            AccessLogFormat::Text => "text",
            AccessLogFormat::Json => "json",
        }
    }
}

impl fmt::Display for AccessLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown access log format {0:?}: expected off, text or json")]
pub struct UnknownAccessLogFormat(String);

impl FromStr for AccessLogFormat {
    type Err = UnknownAccessLogFormat;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(AccessLogFormat::Off),
            "text" => Ok(AccessLogFormat::Text),
            "json" => Ok(AccessLogFormat::Json),
            _ => Err(UnknownAccessLogFormat(value.to_string())),
        }
    }
}

/// Where finished lines go. `line` has no trailing newline.
pub trait AccessLogSink: Send + Sync + 'static {
    fn write_line(&self, line: &str);
}

/// Writes each line to the process's stdout.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdoutSink;

impl AccessLogSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        // A closed or full stdout must not take the proxy down; the line is lost.
        let _ = std::io::stdout().lock().write_all(&buffer);
    }
}

/// Keeps lines in memory, for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn new() -> Arc<MemorySink> {
        Arc::new(MemorySink::default())
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl AccessLogSink for MemorySink {
    fn write_line(&self, line: &str) {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line.to_string());
    }
}

/// The access log: a format and a sink. Cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    format: AccessLogFormat,
    sink: Arc<dyn AccessLogSink>,
}

impl AccessLog {
    pub fn new(format: AccessLogFormat, sink: Arc<dyn AccessLogSink>) -> AccessLog {
        AccessLog { format, sink }
    }

    /// `format` to stdout.
    pub fn stdout(format: AccessLogFormat) -> AccessLog {
        AccessLog::new(format, Arc::new(StdoutSink))
    }

    /// Writes nothing.
    pub fn off() -> AccessLog {
        AccessLog::stdout(AccessLogFormat::Off)
    }

    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    pub fn is_enabled(&self) -> bool {
        self.format != AccessLogFormat::Off
    }

    /// Writes the line for `connection`, unless the format is `Off`.
    pub fn write(&self, connection: &ClosedConnection<'_>) {
        if let Some(line) = render(self.format, connection, SystemTime::now()) {
            self.sink.write_line(&line);
        }
    }
}

/// What is known about a connection when it opens (or, for `policy`, when it is decided).
/// Absent fields are left out of the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogEntry {
    pub src_addr: SocketAddr,
    /// The source pod's name (or its canonical service when the pod is not known by name).
    pub src_workload: Option<String>,
    pub src_namespace: Option<String>,
    /// Only when proven by mTLS.
    pub src_identity: Option<Identity>,
    pub dst_addr: SocketAddr,
    /// The HBONE target (`:authority`) when the connection is tunnelled; `dst_addr` is then the
    /// address dialled (ztunnel or waypoint port 15008).
    pub dst_hbone_addr: Option<SocketAddr>,
    /// The destination service's hostname.
    pub dst_service: Option<String>,
    pub dst_workload: Option<String>,
    pub dst_namespace: Option<String>,
    /// Only when proven by mTLS.
    pub dst_identity: Option<Identity>,
    /// The authorization policy ("namespace/name") that decided the connection, if one did.
    pub policy: Option<String>,
}

impl AccessLogEntry {
    pub fn new(src_addr: SocketAddr, dst_addr: SocketAddr) -> AccessLogEntry {
        AccessLogEntry {
            src_addr,
            src_workload: None,
            src_namespace: None,
            src_identity: None,
            dst_addr,
            dst_hbone_addr: None,
            dst_service: None,
            dst_workload: None,
            dst_namespace: None,
            dst_identity: None,
            policy: None,
        }
    }
}

/// A connection at close time: everything one access-log line says.
#[derive(Clone, Copy, Debug)]
pub struct ClosedConnection<'a> {
    pub entry: &'a AccessLogEntry,
    pub reporter: Reporter,
    pub start_time: SystemTime,
    pub duration: Duration,
    /// Bytes from the downstream (initiator) toward the upstream.
    pub received: u64,
    /// Bytes from the upstream back to the downstream.
    pub sent: u64,
    pub response_flags: ResponseFlags,
    pub error: Option<&'a str>,
}

enum Value<'a> {
    Text(Cow<'a, str>),
    Number(u64),
}

/// Renders one line (without newline) as of `now`; `None` when `format` is `Off`.
///
/// `bytes_sent`/`bytes_recv` are seen from the workload this ztunnel serves on that side, as in
/// Istio's log: outbound, `bytes_sent` is what the local client sent; inbound, it is what the
/// local server sent back.
pub fn render(format: AccessLogFormat, connection: &ClosedConnection<'_>, now: SystemTime) -> Option<String> {
    if format == AccessLogFormat::Off {
        return None;
    }
    let entry = connection.entry;
    let (bytes_sent, bytes_recv) = match connection.reporter {
        Reporter::Source => (connection.received, connection.sent),
        Reporter::Destination => (connection.sent, connection.received),
    };
    let fields = [
        ("start_time", owned(timestamp(connection.start_time))),
        ("src.addr", owned(entry.src_addr.to_string())),
        ("src.workload", borrowed(entry.src_workload.as_deref())),
        ("src.namespace", borrowed(entry.src_namespace.as_deref())),
        ("src.identity", entry.src_identity.as_ref().and_then(|id| owned(id.to_string()))),
        ("dst.addr", owned(entry.dst_addr.to_string())),
        ("dst.hbone_addr", entry.dst_hbone_addr.and_then(|addr| owned(addr.to_string()))),
        ("dst.service", borrowed(entry.dst_service.as_deref())),
        ("dst.workload", borrowed(entry.dst_workload.as_deref())),
        ("dst.namespace", borrowed(entry.dst_namespace.as_deref())),
        ("dst.identity", entry.dst_identity.as_ref().and_then(|id| owned(id.to_string()))),
        ("direction", text(connection.reporter.direction())),
        ("reporter", text(connection.reporter.as_str())),
        ("bytes_sent", Some(Value::Number(bytes_sent))),
        ("bytes_recv", Some(Value::Number(bytes_recv))),
        ("duration", owned(format!("{}ms", connection.duration.as_millis()))),
        ("response_flags", text(connection.response_flags.as_str())),
        ("policy", borrowed(entry.policy.as_deref())),
        ("error", borrowed(connection.error)),
    ];
    let level = if connection.error.is_some() { "error" } else { "info" };
    let mut line = String::with_capacity(512);
    match format {
        AccessLogFormat::Off => unreachable!("handled above"),
        AccessLogFormat::Text => {
            line.push_str(&timestamp(now));
            line.push(' ');
            line.push_str(level);
            line.push_str(" access connection complete");
            for (key, value) in fields.iter().filter_map(|(key, value)| Some((key, value.as_ref()?))) {
                line.push(' ');
                line.push_str(key);
                line.push('=');
                match value {
                    Value::Number(number) => line.push_str(&number.to_string()),
                    Value::Text(text) if needs_quotes(text) => line.push_str(&quoted(text)),
                    Value::Text(text) => line.push_str(text),
                }
            }
        }
        AccessLogFormat::Json => {
            line.push_str("{\"time\":");
            line.push_str(&quoted(&timestamp(now)));
            line.push_str(",\"level\":");
            line.push_str(&quoted(level));
            line.push_str(",\"scope\":\"access\",\"message\":\"connection complete\"");
            for (key, value) in fields.iter().filter_map(|(key, value)| Some((key, value.as_ref()?))) {
                line.push(',');
                line.push_str(&quoted(key));
                line.push(':');
                match value {
                    Value::Number(number) => line.push_str(&number.to_string()),
                    Value::Text(text) => line.push_str(&quoted(text)),
                }
            }
            line.push('}');
        }
    }
    Some(line)
}

fn text(value: &'static str) -> Option<Value<'static>> {
    Some(Value::Text(Cow::Borrowed(value)))
}

fn owned(value: String) -> Option<Value<'static>> {
    Some(Value::Text(Cow::Owned(value)))
}

fn borrowed(value: Option<&str>) -> Option<Value<'_>> {
    value.map(|value| Value::Text(Cow::Borrowed(value)))
}

/// RFC 3339 in UTC with microseconds.
fn timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let at = at.replace_nanosecond(at.nanosecond() / 1000 * 1000).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Text values are bare unless they would be ambiguous to split on spaces and `=`.
fn needs_quotes(value: &str) -> bool {
    value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'))
}

/// A JSON string literal, which is also how quoted text values are written.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("\"\""))
}
