//! A node's deploy path as the tests read it (the `current` link, the releases, deckhand's lock
//! and history), and the HTTP app every test node serves (`app.py`, shared by the local balanced
//! fleet and the sshd fleet). It only reads: changing a node is deckhand's job, or the test's.

use std::path::{Path, PathBuf};

/// The node app's source, for a fleet that installs its own copy (the sshd fleet's login user
/// may not be able to read this repository).
pub const APP_PY: &str = include_str!("app.py");

/// The node app in this repository, for fleets that run it as the test's own user.
pub fn app_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/app.py")
}

/// The release `current` points at (its directory's name), if the link is there.
pub fn current(deploy_path: &Path) -> Option<String> {
    let link = std::fs::read_link(deploy_path.join("current")).ok()?;
    link.file_name().map(|f| f.to_string_lossy().into_owned())
}

/// The release directories under `releases/`, sorted by name.
pub fn releases(deploy_path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(deploy_path.join("releases"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Does deckhand's lock sit on this node?
pub fn locked(deploy_path: &Path) -> bool {
    deploy_path.join(".deckhand/lock").exists()
}

/// The node's deployment history (`.deckhand/history.jsonl`), one JSON value per line.
pub fn history(deploy_path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(deploy_path.join(".deckhand/history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
