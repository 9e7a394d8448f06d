//! The served state: per type URL, name -> (version, aliases, body), moved forward atomically by
//! [`ResourceUpdate`]s. Connections never hold the lock across an `.await`: they read what they
//! need in one short critical section (see [`Cache::read`]) and are woken by a `watch` of the
//! revision, so the update path never waits for a client.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use crate::xds::resource::{Resource, ResourceUpdate};

#[cfg(test)]
mod tests;

/// Default bound of the changelog, in changed names (summed over its entries).
pub const DEFAULT_CHANGELOG_LIMIT: usize = 16_384;

/// One served resource. Shared (`Arc`) by the cache and every response that carries it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Changes exactly when the body or the aliases change. A hash of both, so the same content
    /// has the same version across control-plane restarts and replicas: a client reconnecting
    /// with `initial_resource_versions` is not resent what it already has.
    pub version: Arc<str>,
    pub aliases: Vec<String>,
    pub body: Bytes,
}

/// The resources of one type, with the on-demand alias index.
#[derive(Debug, Default)]
pub struct TypeState {
    resources: HashMap<String, Arc<Entry>>,
    /// alias -> primary names claiming it, most recent claim last (during e.g. IP reuse, two
    /// workloads may briefly claim the same `<network>/<ip>`).
    aliases: HashMap<String, Vec<String>>,
    /// Revision of the last change to this type.
    revision: u64,
}

impl TypeState {
    pub fn get(&self, name: &str) -> Option<&Arc<Entry>> {
        self.resources.get(name)
    }

    /// The resource a client-given name refers to: a primary name first, else an alias.
    pub fn lookup(&self, name_or_alias: &str) -> Option<&Arc<Entry>> {
        self.resources.get(name_or_alias).or_else(|| {
            let primary = self.aliases.get(name_or_alias)?.last()?;
            self.resources.get(primary)
        })
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.resources.values()
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn insert(&mut self, entry: Arc<Entry>) {
        if let Some(old) = self.resources.get(&entry.name).cloned() {
            self.unindex(&old);
        }
        for alias in &entry.aliases {
            self.aliases.entry(alias.clone()).or_default().push(entry.name.clone());
        }
        self.resources.insert(entry.name.clone(), entry);
    }

    fn remove(&mut self, name: &str) -> bool {
        match self.resources.remove(name) {
            Some(old) => {
                self.unindex(&old);
                true
            }
            None => false,
        }
    }

    fn unindex(&mut self, entry: &Entry) {
        for alias in &entry.aliases {
            if let Some(primaries) = self.aliases.get_mut(alias) {
                primaries.retain(|p| *p != entry.name);
                if primaries.is_empty() {
                    self.aliases.remove(alias);
                }
            }
        }
    }
}

/// One applied batch in the changelog.
#[derive(Debug)]
struct LogEntry {
    revision: u64,
    at: Instant,
    /// `(type_url, primary name)` of every resource the batch upserted or removed.
    changed: Vec<(&'static str, Arc<str>)>,
}

/// What changed for a type since a revision.
#[derive(Debug, PartialEq, Eq)]
pub enum Changes {
    /// The changed names, and when the earliest of those changes was applied (for latency).
    Names(HashSet<Arc<str>>, Option<Instant>),
    /// The log no longer reaches back that far: diff the whole state instead.
    Trimmed,
}

/// The state behind the lock: read it with [`Cache::read`].
#[derive(Debug)]
pub struct CacheState {
    revision: u64,
    types: HashMap<&'static str, TypeState>,
    log: VecDeque<LogEntry>,
    log_names: usize,
    log_limit: usize,
    /// Every change after this revision is in the log.
    log_floor: u64,
}

static EMPTY: std::sync::LazyLock<TypeState> = std::sync::LazyLock::new(TypeState::default);

impl CacheState {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The resources of a type (empty when nothing of that type was ever served).
    pub fn of_type(&self, type_url: &str) -> &TypeState {
        self.types.get(type_url).unwrap_or(&EMPTY)
    }

    /// Primary names of `type_url` changed after `since` (up to the current revision).
    pub fn changes_since(&self, type_url: &str, since: u64) -> Changes {
        if since < self.log_floor {
            return Changes::Trimmed;
        }
        let mut names = HashSet::new();
        let mut earliest = None;
        // The log is in revision order: walk back from the newest until `since`.
        for entry in self.log.iter().rev().take_while(|e| e.revision > since) {
            for (_, name) in entry.changed.iter().filter(|(t, _)| *t == type_url) {
                names.insert(name.clone());
                earliest = Some(entry.at);
            }
        }
        Changes::Names(names, earliest)
    }

    fn trim_log(&mut self) {
        while self.log_names > self.log_limit
            && let Some(oldest) = self.log.pop_front()
        {
            self.log_names -= oldest.changed.len();
            self.log_floor = oldest.revision;
        }
    }
}

/// What [`Cache::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The cache revision after the update (unchanged when nothing changed).
    pub revision: u64,
    pub upserted: usize,
    pub removed: usize,
}

/// The served xDS state. Cheap to share (`Arc<Cache>`); all methods take `&self`.
#[derive(Debug)]
pub struct Cache {
    state: RwLock<CacheState>,
    revision: watch::Sender<u64>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

impl Cache {
    pub fn new() -> Self {
        Cache::with_changelog_limit(DEFAULT_CHANGELOG_LIMIT)
    }

    /// A cache whose changelog keeps at most about `limit` changed names; connections further
    /// behind than that diff their whole state instead.
    pub fn with_changelog_limit(limit: usize) -> Self {
        let state = CacheState {
            revision: 0,
            types: HashMap::new(),
            log: VecDeque::new(),
            log_names: 0,
            log_limit: limit,
            log_floor: 0,
        };
        Cache { state: RwLock::new(state), revision: watch::channel(0).0 }
    }

    /// Applies a batch atomically. Removals are applied before upserts, so a name both removed
    /// and upserted in one batch ends up served. An upsert identical (body and aliases) to what
    /// is served changes nothing; a batch that changes nothing does not bump the revision.
    pub fn apply(&self, update: ResourceUpdate) -> Applied {
        let mut state = self.write();
        let revision = state.revision + 1;
        let mut changed: Vec<(&'static str, Arc<str>)> = Vec::new();
        let (mut upserted, mut removed) = (0, 0);

        let mut removals = update.removals;
        if update.full {
            // Everything served but not in the new full state goes away.
            let kept: HashSet<(&str, &str)> = update.upserts.iter().map(|r| (r.type_url, r.name.as_str())).collect();
            for (type_url, types) in &state.types {
                removals.extend(
                    types
                        .resources
                        .keys()
                        .filter(|n| !kept.contains(&(*type_url, n.as_str())))
                        .map(|n| (*type_url, n.clone())),
                );
            }
        }
        for (type_url, name) in removals {
            let Some(types) = state.types.get_mut(type_url) else { continue };
            if types.remove(&name) {
                types.revision = revision;
                removed += 1;
                changed.push((type_url, name.into()));
            }
        }
        for resource in update.upserts {
            let types = state.types.entry(resource.type_url).or_default();
            if types.get(&resource.name).is_some_and(|e| e.body == resource.body && e.aliases == resource.aliases) {
                continue;
            }
            let type_url = resource.type_url;
            let entry = Arc::new(entry_of(resource));
            changed.push((type_url, entry.name.as_str().into()));
            types.insert(entry);
            types.revision = revision;
            upserted += 1;
        }

        if changed.is_empty() {
            return Applied { revision: state.revision, upserted, removed };
        }
        state.revision = revision;
        state.log_names += changed.len();
        state.log.push_back(LogEntry { revision, at: Instant::now(), changed });
        state.trim_log();
        drop(state);
        self.revision.send_replace(revision);
        Applied { revision, upserted, removed }
    }

    /// Runs `f` on the state under the read lock. `f` is synchronous, so the lock can never be
    /// held across an `.await`; keep it short (clone the `Arc<Entry>`s you need).
    pub fn read<R>(&self, f: impl FnOnce(&CacheState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// Wakes on every revision change (intermediate revisions may be skipped: readers coalesce).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The resource a name or alias refers to.
    pub fn lookup(&self, type_url: &str, name_or_alias: &str) -> Option<Arc<Entry>> {
        self.read(|s| s.of_type(type_url).lookup(name_or_alias).cloned())
    }

    /// Every resource of a type.
    pub fn snapshot(&self, type_url: &str) -> Vec<Arc<Entry>> {
        self.read(|s| s.of_type(type_url).entries().cloned().collect())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entry_of(resource: Resource) -> Entry {
    let mut hasher = std::hash::DefaultHasher::new();
    resource.body.hash(&mut hasher);
    resource.aliases.hash(&mut hasher);
    Entry {
        name: resource.name,
        version: format!("{:016x}", hasher.finish()).into(),
        aliases: resource.aliases,
        body: resource.body,
    }
}
