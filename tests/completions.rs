//! The checked-in completion scripts must match the CLI. To refresh them:
//! `UPDATE_COMPLETIONS=1 cargo test --test completions`.

use ambient::cli::completions::{CompletionShell, generate};

#[test]
fn checked_in_completions_are_up_to_date() {
    let update = std::env::var_os("UPDATE_COMPLETIONS").is_some();
    let mut stale = Vec::new();
    for shell in CompletionShell::ALL {
        let path = std::path::Path::new("completions").join(shell.file_name());
        let want = generate(shell);
        if update {
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale shell completions: {stale:?}; regenerate with `UPDATE_COMPLETIONS=1 cargo test --test completions`"
    );
}
