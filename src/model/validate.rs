//! Field-level validation of decoded resources.
//!
//! serde catches wrong types and unknown enum values; this catches values that are well-typed but
//! meaningless (a CIDR that does not parse, port 70000). Every problem is collected, not just the
//! first, and each one names the field by its path in the document (`spec.rules[0].to[1]...`).

use std::fmt;
use std::net::IpAddr;

/// One invalid value, located by its field path inside the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

/// Collects [`FieldError`]s while walking an object; `at`/`index` build the path.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<String>,
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with `name` appended to the current field path.
    pub fn at(&mut self, name: &str, f: impl FnOnce(&mut Self)) {
        self.path.push(format!(".{name}"));
        f(self);
        self.path.pop();
    }

    /// Runs `f` for every item of `items`, with `name[i]` appended to the path.
    pub fn each<T>(&mut self, name: &str, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        for (i, item) in items.iter().enumerate() {
            self.path.push(format!(".{name}[{i}]"));
            f(self, item);
            self.path.pop();
        }
    }

    /// The current field path, without the leading dot.
    pub fn path(&self) -> String {
        self.path.concat().trim_start_matches('.').to_string()
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(FieldError { field: self.path(), message: message.into() });
    }

    /// Error at `name` below the current path.
    pub fn error_at(&mut self, name: &str, message: impl Into<String>) {
        self.at(name, |v| v.error(message));
    }

    pub fn finish(self) -> Vec<FieldError> {
        self.errors
    }

    /// A port number from 1 to 65535.
    pub fn port(&mut self, name: &str, port: i64) {
        if !(1..=65535).contains(&port) {
            self.error_at(name, format!("port {port} is out of range 1-65535"));
        }
    }

    /// A list of strings that must each be an IP address or a CIDR block.
    pub fn ip_blocks(&mut self, name: &str, blocks: &[String]) {
        self.each(name, blocks, |v, b| {
            if let Err(msg) = parse_ip_block(b) {
                v.error(msg);
            }
        });
    }

    /// A list of strings that must each be a port number (Istio writes ports as strings).
    pub fn port_strings(&mut self, name: &str, ports: &[String]) {
        self.each(name, ports, |v, p| match p.parse::<i64>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            Ok(n) => v.error(format!("port {n} is out of range 1-65535")),
            Err(_) => v.error(format!("{p:?} is not a port number")),
        });
    }
}

/// Parses `10.0.0.0/8`, `10.1.2.3` or `fd00::/64` into a network; a bare address is a /32 or /128.
pub fn parse_ip_block(s: &str) -> Result<ipnet::IpNet, String> {
    if s.contains('/') {
        s.parse::<ipnet::IpNet>().map_err(|_| format!("{s:?} is not a valid CIDR block"))
    } else {
        s.parse::<IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| format!("{s:?} is not a valid IP address or CIDR block"))
    }
}

/// Types that can check their own values.
pub trait Validate {
    fn validate(&self, v: &mut Validator);

    /// Validates from the root of the object and returns every problem found.
    fn validation_errors(&self) -> Vec<FieldError> {
        let mut v = Validator::new();
        self.validate(&mut v);
        v.finish()
    }
}
