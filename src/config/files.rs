//! The `files` backend: files and folders of multi-document YAML (or `-` for stdin), watched.
//!
//! Every reload reads the inputs again but re-decodes only files whose text changed. Each file
//! keeps what it last decoded, so a document that breaks keeps its last good object in the store
//! until it is fixed or removed; a file that is deleted takes its objects with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;
use tokio::sync::mpsc;

use super::ConfigError;
use super::diagnostic::{Code, Diagnostic};
use super::store::{Store, Write};
use super::yaml::{DecodeOptions, decode_stream};
use crate::model::{ObjectRef, Resource};

/// The name stdin is reported under.
pub const STDIN: &str = "<stdin>";

/// How long the watcher waits for a burst of file events to settle before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// What the files backend reads.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Files, folders (read recursively: `*.yaml`, `*.yml`, `*.json`), or `-` for stdin.
    pub paths: Vec<PathBuf>,
    /// Watch for changes after the first load.
    pub watch: bool,
    pub decode: DecodeOptions,
}

impl FilesConfig {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FilesConfig { paths, watch: true, decode: DecodeOptions::default() }
    }
}

/// What one file last decoded to.
#[derive(Default)]
struct FileState {
    text: String,
    objects: BTreeMap<ObjectRef, Resource>,
    diagnostics: Vec<Diagnostic>,
}

/// Loads and reloads the configured inputs into a [`Store`].
pub struct FileLoader {
    config: FilesConfig,
    stdin: Option<String>,
    files: BTreeMap<PathBuf, FileState>,
    /// What this loader last wrote to the store, to compute removals.
    published: BTreeMap<ObjectRef, Resource>,
}

fn is_config_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// Every config file below `dir`, sorted; hidden files and folders are skipped.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let hidden = entry.file_name().to_str().is_some_and(|n| n.starts_with('.'));
        if entry.file_type()?.is_dir() {
            if !hidden {
                walk(&path, out)?;
            }
        } else if is_config_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl FileLoader {
    /// Checks that every input exists (reading stdin now if `-` is given).
    pub fn new(config: FilesConfig) -> Result<Self, ConfigError> {
        let mut stdin = None;
        for path in &config.paths {
            if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| ConfigError::Read { path: STDIN.into(), source: e })?;
                stdin = Some(text);
            } else if !path.exists() {
                return Err(ConfigError::MissingPath(path.clone()));
            }
        }
        Ok(FileLoader { config, stdin, files: BTreeMap::new(), published: BTreeMap::new() })
    }

    /// A loader over text already in memory, reported as `source` (for tests and `analyze`).
    pub fn from_text(source: &str, text: String, decode: DecodeOptions) -> Self {
        let mut loader = FileLoader {
            config: FilesConfig { paths: vec![], watch: false, decode },
            stdin: None,
            files: BTreeMap::new(),
            published: BTreeMap::new(),
        };
        loader.load_file(PathBuf::from(source), Ok(text));
        loader
    }

    /// Lists the current input files, with problems for folders that cannot be read.
    fn list_inputs(&self) -> (Vec<PathBuf>, Vec<Diagnostic>) {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for path in &self.config.paths {
            if path.as_os_str() == "-" {
                continue;
            }
            if path.is_dir() {
                if let Err(e) = walk(path, &mut files) {
                    problems.push(Diagnostic::new(Code::Unreadable, path.display().to_string(), e.to_string()));
                }
            } else {
                // A named file is read even without a YAML extension; if it was deleted, it
                // simply has no objects now.
                files.push(path.clone());
            }
        }
        files.dedup();
        (files, problems)
    }

    /// Re-reads the inputs and writes the difference to `store`. Returns whether anything changed.
    pub fn reload(&mut self, store: &Store) -> bool {
        let (inputs, mut problems) = self.list_inputs();
        let inputs: BTreeSet<PathBuf> = inputs.into_iter().collect();
        self.files.retain(|path, _| inputs.contains(path) || path.as_os_str() == STDIN);
        if let Some(text) = self.stdin.take() {
            self.load_file(PathBuf::from(STDIN), Ok(text));
        }
        for path in &inputs {
            match std::fs::read_to_string(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.files.remove(path);
                }
                result => self.load_file(path.clone(), result),
            }
        }
        let (objects, mut merged_problems) = self.merged();
        problems.append(&mut merged_problems);
        store.set_diagnostics("files", problems);
        let writes = self.diff(objects);
        store.apply(writes).is_some()
    }

    /// Decodes one file's text (if it changed), keeping last-good objects for broken documents.
    fn load_file(&mut self, path: PathBuf, text: std::io::Result<String>) {
        let source = path.display().to_string();
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                // Unreadable now: keep what it had, and say why.
                let state = self.files.entry(path).or_default();
                state.diagnostics = vec![Diagnostic::new(Code::Unreadable, source, e.to_string())];
                // Forget the text so the next successful read is decoded again.
                state.text.clear();
                return;
            }
        };
        if self.files.get(&path).is_some_and(|s| s.text == text && !s.text.is_empty()) {
            return;
        }
        let previous = self.files.remove(&path).unwrap_or_default();
        let mut state = FileState { text: String::new(), objects: BTreeMap::new(), diagnostics: Vec::new() };
        let mut unidentified_failure = false;
        for decoded in decode_stream(&source, &text, &self.config.decode) {
            state.diagnostics.extend(decoded.diagnostics);
            match (decoded.resource, decoded.object) {
                (Some(resource), _) => {
                    let key = resource.object_ref();
                    match state.objects.entry(key) {
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(resource);
                        }
                        std::collections::btree_map::Entry::Occupied(existing) => {
                            let key = existing.key();
                            let mut d = Diagnostic::new(
                                Code::DuplicateObject,
                                &source,
                                format!("{key} is defined again in the same file; the first definition is used"),
                            );
                            d.line = Some(decoded.line);
                            d.object = Some(key.to_string());
                            state.diagnostics.push(d);
                        }
                    }
                }
                // Broken, but we know which object it is: keep its last good version.
                (None, Some(key)) => {
                    if let Some(old) = previous.objects.get(&key) {
                        state.objects.entry(key).or_insert_with(|| old.clone());
                    }
                }
                (None, None) => {
                    let ignored = state.diagnostics.last().is_some_and(|d| d.code == Code::IgnoredKind);
                    unidentified_failure |= !ignored;
                }
            }
        }
        if unidentified_failure {
            // A document we cannot name is broken: it may be any of the file's previous objects,
            // so keep all of them until the file reads cleanly.
            for (key, old) in previous.objects {
                state.objects.entry(key).or_insert(old);
            }
        }
        state.text = text;
        self.files.insert(path, state);
    }

    /// All files' objects merged (first file in path order wins), plus every file's problems.
    fn merged(&self) -> (BTreeMap<ObjectRef, Resource>, Vec<Diagnostic>) {
        let mut objects: BTreeMap<ObjectRef, Resource> = BTreeMap::new();
        let mut owners: BTreeMap<ObjectRef, &Path> = BTreeMap::new();
        let mut problems = Vec::new();
        for (path, state) in &self.files {
            problems.extend(state.diagnostics.iter().cloned());
            for (key, resource) in &state.objects {
                if let Some(owner) = owners.get(key) {
                    let msg = format!("{key} is already defined in {}; this definition is ignored", owner.display());
                    let mut d = Diagnostic::new(Code::DuplicateObject, path.display().to_string(), msg);
                    d.object = Some(key.to_string());
                    problems.push(d);
                    continue;
                }
                owners.insert(key.clone(), path);
                objects.insert(key.clone(), resource.clone());
            }
        }
        (objects, problems)
    }

    /// Writes that turn what was published into `objects`, and records `objects` as published.
    fn diff(&mut self, objects: BTreeMap<ObjectRef, Resource>) -> Vec<Write> {
        let mut writes: Vec<Write> =
            self.published.keys().filter(|k| !objects.contains_key(*k)).map(|k| Write::Remove(k.clone())).collect();
        for (key, resource) in &objects {
            if self.published.get(key) != Some(resource) {
                writes.push(Write::Put(resource.clone()));
            }
        }
        self.published = objects;
        writes
    }

    /// Every problem of the last load (what `ambient analyze` reports).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.merged().1
    }

    /// How many files (stdin counts as one) the last load read.
    pub fn files_read(&self) -> usize {
        self.files.len()
    }

    /// Every object of the last load.
    pub fn objects(&self) -> BTreeMap<ObjectRef, Resource> {
        self.merged().0
    }

    /// Folders to watch: each input folder recursively, and the parent folder of each input
    /// file (editors replace files by rename, which a watch on the file itself would miss).
    fn watch_targets(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut targets = Vec::new();
        for path in &self.config.paths {
            if path.as_os_str() == "-" {
                continue;
            }
            if path.is_dir() {
                targets.push((path.clone(), RecursiveMode::Recursive));
            } else {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                targets.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
            }
        }
        targets.sort();
        targets.dedup();
        targets
    }
}

/// Loads the inputs into `store`, marks it synced, then (if configured) watches and reloads
/// until the returned task is dropped/aborted.
pub async fn run(mut loader: FileLoader, store: Store) -> Result<(), ConfigError> {
    loader.reload(&store);
    store.mark_synced();
    if !loader.config.watch || loader.watch_targets().is_empty() {
        return Ok(());
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: notify_debouncer_full::DebounceEventResult| {
        if let Err(errors) = &result {
            for e in errors {
                tracing::warn!(error = %e, "file watch error");
            }
        }
        let _ = tx.send(());
    })
    .map_err(ConfigError::Watch)?;
    for (target, mode) in loader.watch_targets() {
        debouncer.watch(&target, mode).map_err(ConfigError::Watch)?;
    }
    // Changes between the first load and the watch starting would be missed: read once more.
    loader.reload(&store);
    let mut reported = store.diagnostics();
    for d in &reported {
        tracing::warn!("{d}");
    }
    while rx.recv().await.is_some() {
        while rx.try_recv().is_ok() {}
        let changed = loader.reload(&store);
        tracing::debug!(changed, "config files reloaded");
        // Log each problem once when it appears, not again on every reload while it lasts.
        let current = store.diagnostics();
        for d in current.iter().filter(|d| !reported.contains(d)) {
            tracing::warn!("{d}");
        }
        reported = current;
    }
    drop(debouncer);
    Ok(())
}
