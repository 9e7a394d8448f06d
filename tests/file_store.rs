//! The files backend, live: edits, new files, deleted files, broken and fixed documents are all
//! picked up without a restart, and a broken object keeps its last good version.

use std::path::Path;
use std::time::Duration;

use ambient::config::files::FilesConfig;
use ambient::config::{Change, Code, SourceConfig, Store, Subscription, Update, start};
use ambient::model::{Kind, ObjectRef, Resource};

const WAIT: Duration = Duration::from_secs(10);

fn ns(name: &str, label: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    team: {label}\n")
}

fn policy(name: &str, action: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  action: {action}\n"
    )
}

fn label_of(store: &Store, name: &str) -> Option<String> {
    let snap = store.snapshot();
    let obj = snap.get(&ObjectRef::new(Kind::Namespace, "", name))?;
    obj.labels().get("team").cloned()
}

/// Waits for the next change batch and returns it as (kind, name, applied?) triples.
async fn next_changes(sub: &mut Subscription) -> Vec<(Kind, String, bool)> {
    let update =
        tokio::time::timeout(WAIT, sub.next()).await.expect("a change within the deadline").expect("store alive");
    let Update::Changes(set) = update else { panic!("unexpected resync") };
    set.changes
        .iter()
        .map(|c| match c {
            Change::Applied(r) => (r.kind(), r.name().to_string(), true),
            Change::Deleted(r) => (r.kind(), r.name().to_string(), false),
        })
        .collect()
}

fn write(path: &Path, text: &str) {
    // Write-then-rename, as editors do, so the watcher sees one complete replacement.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn live_reload_edit_add_delete_break_fix() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let nested = dir.path().join("nested");
    std::fs::create_dir(&nested).unwrap();
    write(&a, &format!("{}---\n{}", ns("one", "red"), policy("p", "ALLOW")));

    let source = start(SourceConfig::Files(FilesConfig::new(vec![dir.path().to_path_buf()]))).await.unwrap();
    let store = source.store.clone();
    tokio::time::timeout(WAIT, store.synced()).await.expect("initial load");
    let mut sub = store.subscribe();
    let initial = sub.initial().unwrap();
    assert_eq!(initial.len(), 2);
    assert_eq!(label_of(&store, "one").as_deref(), Some("red"));

    // Edit: one object changes, the other is untouched and not re-sent.
    write(&a, &format!("{}---\n{}", ns("one", "blue"), policy("p", "ALLOW")));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "one".into(), true)]);
    assert_eq!(label_of(&store, "one").as_deref(), Some("blue"));

    // Add a file in a nested folder.
    let b = nested.join("b.yml");
    write(&b, &ns("two", "green"));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "two".into(), true)]);

    // Break the policy (unknown enum value): it keeps its last good version, the rest still
    // loads, and the problem is reported with file, line and field.
    write(&a, &format!("{}---\n{}", ns("one", "yellow"), policy("p", "MAYBE")));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "one".into(), true)]);
    let kept = store.snapshot();
    let Some(p) = kept.get(&ObjectRef::new(Kind::AuthorizationPolicy, "shop", "p")) else { panic!("policy dropped") };
    let Resource::AuthorizationPolicy(p) = p.as_ref() else { panic!() };
    assert_eq!(p.spec.action, ambient::model::security::AuthorizationAction::Allow);
    let diags = store.diagnostics();
    let d = diags.iter().find(|d| d.code == Code::SchemaViolation).expect("a diagnostic for the broken policy");
    assert_eq!(d.file, a.display().to_string());
    assert_eq!(d.line, Some(14));
    assert_eq!(d.field.as_deref(), Some("spec.action"));

    // Break the YAML itself: the document cannot even be named, so everything the file had stays.
    write(&a, &format!("{}---\n{}", ns("one", "yellow"), "apiVersion: [oops\n"));
    assert!(tokio::time::timeout(Duration::from_millis(800), sub.next()).await.is_err(), "no change expected");
    assert!(store.diagnostics().iter().any(|d| d.code == Code::YamlSyntax && d.line == Some(8)));
    assert_eq!(store.snapshot().len(), 3);

    // Fix it with a different action: the new version replaces the kept one, diagnostics clear.
    write(&a, &format!("{}---\n{}", ns("one", "yellow"), policy("p", "DENY")));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::AuthorizationPolicy, "p".into(), true)]);
    assert!(store.diagnostics().is_empty(), "{:?}", store.diagnostics());

    // Remove the policy from the file: it is deleted from the store.
    write(&a, &ns("one", "yellow"));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::AuthorizationPolicy, "p".into(), false)]);

    // Delete a file: its objects go.
    std::fs::remove_file(&b).unwrap();
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "two".into(), false)]);
    assert_eq!(store.snapshot().len(), 1);
}

#[tokio::test]
async fn single_file_input_is_watched_through_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    let other = dir.path().join("unrelated.yaml");
    write(&file, &ns("one", "red"));
    write(&other, &ns("ignored", "x"));
    let source = start(SourceConfig::Files(FilesConfig::new(vec![file.clone()]))).await.unwrap();
    let store = source.store.clone();
    tokio::time::timeout(WAIT, store.synced()).await.unwrap();
    let mut sub = store.subscribe();
    assert_eq!(sub.initial().unwrap().len(), 1, "only the named file is read");

    write(&file, &ns("one", "blue"));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "one".into(), true)]);
    // Changing a sibling file that is not an input changes nothing.
    write(&other, &ns("ignored", "y"));
    assert!(tokio::time::timeout(Duration::from_millis(800), sub.next()).await.is_err());
    // Deleting and re-creating the input file.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "one".into(), false)]);
    write(&file, &ns("one", "green"));
    assert_eq!(next_changes(&mut sub).await, vec![(Kind::Namespace, "one".into(), true)]);
}

#[tokio::test]
async fn duplicates_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("1.yaml"), &ns("dup", "first"));
    write(&dir.path().join("2.yaml"), &ns("dup", "second"));
    let source = start(SourceConfig::Files(FilesConfig::new(vec![dir.path().to_path_buf()]))).await.unwrap();
    tokio::time::timeout(WAIT, source.store.synced()).await.unwrap();
    assert_eq!(label_of(&source.store, "dup").as_deref(), Some("first"));
    let diags = source.store.diagnostics();
    assert!(diags.iter().any(|d| d.code == Code::DuplicateObject && d.file.ends_with("2.yaml")), "{diags:?}");

    let err = start(SourceConfig::Files(FilesConfig::new(vec![dir.path().join("missing")]))).await.err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
