//! The tokens file: static bearer tokens for files mode (no Kubernetes to review tokens).
//!
//! One token per line: `<token> <namespace>/<service-account> [node=<node>] [pod=<pod>]`.
//! Blank lines and lines starting with `#` are ignored. A token may not contain whitespace and
//! may appear only once. Example:
//!
//! ```text
//! # ztunnel of node-1, and a workload
//! 0b6f...e1 istio-system/ztunnel node=node-1
//! 9c2a...77 shop/frontend pod=frontend-7d9
//! ```
//!
//! Tokens are kept only as SHA-256 digests, looked up by digest, and never logged; errors name
//! the file and line, never the token. The file is re-read when it changes (a broken new
//! version is reported and the previous one kept).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::digest::{SHA256, digest};
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::model::Identity;
use crate::xds::auth::{AuthError, Authenticator, Caller};

/// Why a tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {problem}")]
    Line { origin: String, line: usize, problem: String },
}

type Digest = [u8; 32];

fn digest_of(token: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// The parsed file: token digests to callers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenTable {
    callers: HashMap<Digest, Caller>,
}

impl TokenTable {
    /// Parses the text of a tokens file; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, TokensError> {
        let mut callers = HashMap::new();
        let mut first_line: HashMap<Digest, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |problem: String| TokensError::Line { origin: origin.to_string(), line, problem };
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut fields = content.split_whitespace();
            let token = fields.next().unwrap_or_default();
            let account = fields.next().ok_or_else(|| {
                err("expected '<token> <namespace>/<service-account> [node=<node>] [pod=<pod>]'".into())
            })?;
            let (namespace, service_account) = account
                .split_once('/')
                .ok_or_else(|| err(format!("{account:?} is not <namespace>/<service-account>")))?;
            Identity::new("cluster.local", namespace, service_account)
                .map_err(|_| err(format!("{account:?} is not a valid <namespace>/<service-account>")))?;
            let mut caller = Caller {
                namespace: namespace.to_string(),
                service_account: service_account.to_string(),
                pod: None,
                node: None,
            };
            for option in fields {
                let (key, value) = option
                    .split_once('=')
                    .filter(|(_, v)| !v.is_empty())
                    .ok_or_else(|| err(format!("{option:?} is not node=<node> or pod=<pod>")))?;
                let slot = match key {
                    "node" => &mut caller.node,
                    "pod" => &mut caller.pod,
                    _ => return Err(err(format!("unknown option {key:?} (expected node= or pod=)"))),
                };
                if slot.replace(value.to_string()).is_some() {
                    return Err(err(format!("{key}= given twice")));
                }
            }
            let key = digest_of(token);
            if let Some(previous) = first_line.insert(key, line) {
                return Err(err(format!("this token is already given on line {previous}")));
            }
            callers.insert(key, caller);
        }
        Ok(TokenTable { callers })
    }

    /// The caller a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<&Caller> {
        self.callers.get(&digest_of(token))
    }

    pub fn len(&self) -> usize {
        self.callers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }
}

/// File identity used to notice changes.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct Loaded {
    table: Arc<TokenTable>,
    stamp: Stamp,
}

/// Authenticates bearer tokens against a tokens file (see the module documentation).
pub struct TokensAuthenticator {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

impl TokensAuthenticator {
    /// Reads `path`; it is re-read when it changes.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, TokensError> {
        let path = path.into();
        let stamp = stamp(&path);
        let table = Self::read(&path)?;
        info!(path = %path.display(), tokens = table.len(), "tokens file loaded");
        Ok(TokensAuthenticator { path: Some(path), loaded: RwLock::new(Loaded { table: Arc::new(table), stamp }) })
    }

    /// A fixed table (tests, embedding).
    pub fn from_table(table: TokenTable) -> Self {
        TokensAuthenticator { path: None, loaded: RwLock::new(Loaded { table: Arc::new(table), stamp: None }) }
    }

    fn read(path: &Path) -> Result<TokenTable, TokensError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokensError::Read { path: path.display().to_string(), source })?;
        TokenTable::parse(&path.display().to_string(), &text)
    }

    /// The current table, re-reading the file first if it changed.
    fn table(&self) -> Arc<TokenTable> {
        let current = {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            (loaded.table.clone(), loaded.stamp)
        };
        let Some(path) = &self.path else { return current.0 };
        let now = stamp(path);
        if now == current.1 {
            return current.0;
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if loaded.stamp != now {
            loaded.stamp = now;
            match Self::read(path) {
                Ok(table) => {
                    info!(path = %path.display(), tokens = table.len(), "tokens file reloaded");
                    loaded.table = Arc::new(table);
                }
                Err(error) => warn!(%error, "tokens file changed but cannot be used; keeping the previous tokens"),
            }
        }
        loaded.table.clone()
    }
}

impl Authenticator for TokensAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        let result = self.table().lookup(token).cloned().ok_or_else(|| AuthError::Rejected("unknown token".into()));
        Box::pin(std::future::ready(result))
    }
}
