//! The HBONE connection pool: connections per [`PoolKey`], each carrying up to a limit of
//! streams at once.
//!
//! A request takes the first live connection of its key with a free stream slot; when there is
//! none it dials a new one. Dials for one key are serialized through a per-key gate, so a burst
//! of first requests shares one connection (up to its stream limit) instead of opening one
//! each, and when that dial fails the waiters get its error instead of each dialing in turn.
//! Each connection has a driver task that polls its HTTP/2 state; when the connection ends
//! (error, GOAWAY, peer closed) or stays without streams for `idle_timeout`, the driver
//! retires it: it leaves the pool and never takes another stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

use super::client::{self, ClientConnection};
use super::{ConnectRequest, HboneError, HboneStream, PoolConfig, PoolKey};

/// How long a retired connection may take to finish its GOAWAY exchange before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Reusable HBONE connections. Cheap to share (`Arc` inside); see the module docs.
#[derive(Clone)]
pub struct HbonePool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for HbonePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HbonePool")
            .field("config", &self.inner.config)
            .field("connections", &self.connections())
            .finish()
    }
}

struct PoolInner {
    config: PoolConfig,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    connections: HashMap<PoolKey, Vec<Arc<PooledConnection>>>,
    gates: HashMap<PoolKey, Arc<DialGate>>,
    next_id: u64,
}

/// Serializes dials for one key and remembers how the last one went.
#[derive(Default)]
struct DialGate {
    record: tokio::sync::Mutex<DialRecord>,
    /// Mirror of `record.finished`, readable without waiting for the lock.
    finished: AtomicU64,
}

#[derive(Default)]
struct DialRecord {
    finished: u64,
    last_error: Option<String>,
}

/// One pooled connection, shared by the pool, its driver task and its streams' slots.
pub(crate) struct PooledConnection {
    id: u64,
    key: PoolKey,
    /// Streams this connection may carry at once.
    limit: usize,
    /// Streams open or being opened. Raised only under the pool lock (with `retired` checked),
    /// lowered by [`StreamSlot`]s as they drop.
    active: AtomicUsize,
    /// Set under the pool lock; a retired connection never takes new streams.
    retired: AtomicBool,
    /// Taken when retired, so h2 closes the connection once its streams are done.
    sender: Mutex<Option<SendRequest<Bytes>>>,
    /// When `active` last dropped to zero.
    idle_since: Mutex<Instant>,
    became_idle: Notify,
}

/// A claimed stream slot on a pooled connection, released when dropped (with the tunnel).
pub(crate) struct StreamSlot {
    connection: Arc<PooledConnection>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.connection.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.connection.idle_since) = Instant::now();
            self.connection.became_idle.notify_one();
        }
    }
}

/// Locks a std mutex, recovering from poisoning: every critical section here leaves the data
/// consistent, so a panic elsewhere is no reason to stop serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A claimed slot with the sender to open the stream on.
struct Checkout {
    slot: StreamSlot,
    sender: SendRequest<Bytes>,
    /// Dialed for this request (so a failure is not a stale-connection failure).
    fresh: bool,
}

impl PoolState {
    /// Claims a stream slot on a live connection of `key` with room, if there is one.
    fn claim(&mut self, key: &PoolKey) -> Option<Checkout> {
        let connections = self.connections.get(key)?;
        for connection in connections {
            if connection.retired.load(Ordering::Acquire) {
                continue;
            }
            let Some(sender) = lock(&connection.sender).clone() else { continue };
            // The server may advertise fewer concurrent streams than we would open.
            let limit = connection.limit.min(sender.current_max_send_streams());
            if connection.active.load(Ordering::Acquire) >= limit {
                continue;
            }
            connection.active.fetch_add(1, Ordering::AcqRel);
            return Some(Checkout { slot: StreamSlot { connection: connection.clone() }, sender, fresh: false });
        }
        None
    }

    /// Removes `connection` from the pool and marks it retired; returns its sender so the
    /// caller drops it outside the lock.
    fn retire(&mut self, connection: &PooledConnection) -> Option<SendRequest<Bytes>> {
        connection.retired.store(true, Ordering::Release);
        if let Some(list) = self.connections.get_mut(&connection.key) {
            list.retain(|c| c.id != connection.id);
            if list.is_empty() {
                self.connections.remove(&connection.key);
            }
        }
        self.forget_unused_gate(&connection.key);
        lock(&connection.sender).take()
    }

    /// Drops the dial gate of `key` when nobody waits on it and no connection remains.
    fn forget_unused_gate(&mut self, key: &PoolKey) {
        if !self.connections.contains_key(key) && self.gates.get(key).is_some_and(|gate| Arc::strong_count(gate) == 1) {
            self.gates.remove(key);
        }
    }
}

impl HbonePool {
    pub fn new(config: PoolConfig) -> Self {
        HbonePool { inner: Arc::new(PoolInner { config, state: Mutex::new(PoolState::default()) }) }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Live connections across all keys.
    pub fn connections(&self) -> usize {
        lock(&self.inner.state).connections.values().map(Vec::len).sum()
    }

    /// Opens a tunnel: CONNECT `req.authority` on a pooled connection for `req.key` (dialing
    /// one when none has room). 200 gives the stream; any other status is
    /// [`HboneError::Status`]. A request that fails because a reused connection turned out to
    /// be dead is tried once more on a new connection.
    pub async fn connect(&self, req: ConnectRequest) -> Result<HboneStream, HboneError> {
        // Checked before dialing: a bad authority should not cost a connection.
        client::connect_request(&req.authority, &req.headers)?;
        let mut retried = false;
        loop {
            let Checkout { slot, sender, fresh } = self.checkout(&req).await?;
            let request = client::connect_request(&req.authority, &req.headers)?;
            match client::send_connect(sender, req.key.dst, request).await {
                Ok((send, recv, headers)) => return Ok(HboneStream::new(send, recv, headers, Some(slot))),
                Err(error) => {
                    let retryable = error.is_retryable_on_new_connection();
                    if retryable {
                        // The connection is broken: nothing else should be sent on it.
                        self.retire(&slot.connection);
                    }
                    if retryable && !fresh && !retried {
                        debug!(key = ?req.key, %error, "HBONE: pooled connection failed, retrying on a new one");
                        retried = true;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    fn retire(&self, connection: &PooledConnection) {
        let sender = lock(&self.inner.state).retire(connection);
        drop(sender);
    }

    /// A stream slot for `req.key`: on a pooled connection with room, else on a new one.
    async fn checkout(&self, req: &ConnectRequest) -> Result<Checkout, HboneError> {
        let gate = {
            let mut state = lock(&self.inner.state);
            if let Some(checkout) = state.claim(&req.key) {
                return Ok(checkout);
            }
            state.gates.entry(req.key.clone()).or_default().clone()
        };
        let result = self.checkout_through(&gate, req).await;
        drop(gate);
        lock(&self.inner.state).forget_unused_gate(&req.key);
        result
    }

    async fn checkout_through(&self, gate: &DialGate, req: &ConnectRequest) -> Result<Checkout, HboneError> {
        let seen = gate.finished.load(Ordering::Acquire);
        let mut record = gate.record.lock().await;
        // Whoever held the gate may have dialed a connection with room for us too.
        if let Some(checkout) = lock(&self.inner.state).claim(&req.key) {
            return Ok(checkout);
        }
        if record.finished != seen
            && let Some(error) = &record.last_error
        {
            return Err(HboneError::SharedConnectFailed { dst: req.key.dst, error: error.clone() });
        }

        let config = &self.inner.config;
        let dialed = tokio::time::timeout(config.connect_timeout, client::dial(req, config.max_streams_per_connection))
            .await
            .unwrap_or_else(|_| Err(HboneError::ConnectTimeout { dst: req.key.dst, timeout: config.connect_timeout }));
        record.finished += 1;
        gate.finished.store(record.finished, Ordering::Release);
        let dialed = match dialed {
            Ok(dialed) => dialed,
            Err(error) => {
                record.last_error = Some(error.to_string());
                return Err(error);
            }
        };
        record.last_error = None;

        let mut state = lock(&self.inner.state);
        state.next_id += 1;
        let connection = Arc::new(PooledConnection {
            id: state.next_id,
            key: req.key.clone(),
            limit: config.max_streams_per_connection.max(1) as usize,
            active: AtomicUsize::new(1),
            retired: AtomicBool::new(false),
            sender: Mutex::new(Some(dialed.sender.clone())),
            idle_since: Mutex::new(Instant::now()),
            became_idle: Notify::new(),
        });
        state.connections.entry(req.key.clone()).or_default().push(connection.clone());
        drop(state);
        debug!(key = ?req.key, id = connection.id, "HBONE: new pooled connection");
        tokio::spawn(drive(Arc::downgrade(&self.inner), connection.clone(), dialed.connection, config.idle_timeout));
        Ok(Checkout { slot: StreamSlot { connection }, sender: dialed.sender, fresh: true })
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Polls the HTTP/2 connection until it ends or idles out, then retires it.
async fn drive(
    pool: Weak<PoolInner>,
    connection: Arc<PooledConnection>,
    mut h2: ClientConnection,
    idle_timeout: Duration,
) {
    let peer: SocketAddr = connection.key.dst;
    let keepalive = super::keepalive(h2.ping_pong());
    tokio::pin!(h2, keepalive);
    loop {
        let idle_deadline =
            (connection.active.load(Ordering::Acquire) == 0).then(|| *lock(&connection.idle_since) + idle_timeout);
        tokio::select! {
            result = &mut h2 => {
                match result {
                    Ok(()) => debug!(%peer, id = connection.id, "HBONE: connection closed"),
                    Err(error) => debug!(%peer, id = connection.id, %error, "HBONE: connection failed"),
                }
                retire(&pool, &connection);
                return;
            }
            why = &mut keepalive => {
                debug!(%peer, id = connection.id, "HBONE: dropping connection: {why}");
                retire(&pool, &connection);
                return;
            }
            _ = connection.became_idle.notified() => {}
            _ = sleep_until(idle_deadline) => {
                if retire_if_idle(&pool, &connection, idle_timeout) {
                    debug!(%peer, id = connection.id, "HBONE: closing idle connection");
                    // Without senders or streams h2 sends GOAWAY and closes.
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut h2).await;
                    return;
                }
            }
        }
    }
}

fn retire(pool: &Weak<PoolInner>, connection: &PooledConnection) {
    let sender = match pool.upgrade() {
        Some(pool) => lock(&pool.state).retire(connection),
        None => {
            connection.retired.store(true, Ordering::Release);
            lock(&connection.sender).take()
        }
    };
    drop(sender);
}

/// Retires `connection` if it has had no stream for `idle_timeout`. Checked under the pool
/// lock, where slots are claimed, so no request can take it in between.
fn retire_if_idle(pool: &Weak<PoolInner>, connection: &PooledConnection, idle_timeout: Duration) -> bool {
    let is_idle =
        || connection.active.load(Ordering::Acquire) == 0 && lock(&connection.idle_since).elapsed() >= idle_timeout;
    let sender = match pool.upgrade() {
        Some(pool) => {
            let mut state = lock(&pool.state);
            if !is_idle() {
                return false;
            }
            state.retire(connection)
        }
        None => {
            if !is_idle() {
                return false;
            }
            connection.retired.store(true, Ordering::Release);
            lock(&connection.sender).take()
        }
    };
    drop(sender);
    true
}
