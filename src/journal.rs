//! The journal: one JSONL file per run, every event of it in order, flushed as it is written.
//!
//! This module owns the journal's name (`{app}-{env}-{deployment id}.jsonl`), where journals live,
//! how a file is created (0600 in a 0700 directory), how one is read back, and the shape of
//! deployment ids. It is part of the protocol between the engine and its readers (console,
//! replay, resume, watch): it knows events, and nothing about nodes, terminals or networks.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::event::Event;

/// A new deployment id: time plus a few random-ish hex digits.
pub(crate) fn new_deployment_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos() as u64 ^ ((std::process::id() as u64) << 16);
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), nanos & 0xffff)
}

/// Whether `s` has the shape [`new_deployment_id`] gives: `20260101T120000Z-1a2b`.
pub(crate) fn is_deployment_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 21
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Where journals live: `$XDG_STATE_HOME/deckhand`, else `~/.local/state/deckhand`.
pub fn default_journal_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("deckhand");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/deckhand")
}

/// The journal file of one run: `{app}-{env}-{deployment id}.jsonl`.
pub(crate) fn journal_name(app: &str, env: &str, id: &str) -> String {
    format!("{app}-{env}-{id}.jsonl")
}

/// Whether the file called `file` is the journal of a run of `app` in `env`. Environment names
/// may contain `-`, so what follows `{app}-{env}-` must be a whole deployment id: the journals
/// of `prod-eu` are not journals of `prod`.
pub(crate) fn is_journal_of(file: &str, app: &str, env: &str) -> bool {
    file.strip_prefix(&format!("{app}-{env}-"))
        .and_then(|rest| rest.strip_suffix(".jsonl"))
        .is_some_and(is_deployment_id)
}

/// Create a journal file readable only by its owner (mode 0600, directory 0700).
pub(crate) fn create_journal(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}

/// A journal line that is not an event: its number (from 1) and why.
pub type BadLine = (usize, serde_json::Error);

/// Read a journal back: its events, and the lines that are not events, for the caller to word.
/// A truncated last line (a crash mid-write) is one of those.
pub(crate) fn read_events(path: &Path) -> std::io::Result<(Vec<Event>, Vec<BadLine>)> {
    let text = std::fs::read_to_string(path)?;
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(e) => bad.push((i + 1, e)),
        }
    }
    Ok((events, bad))
}

/// Read a journal back. Lines that do not parse are reported with their line number instead
/// of being trusted; a truncated last line (a crash mid-write) is reported the same way.
pub fn read_journal(path: &Path) -> std::io::Result<(Vec<Event>, Vec<String>)> {
    let (events, bad) = read_events(path)?;
    let problems = bad
        .into_iter()
        .map(|(line, e)| format!("{}:{line}: not a journal event ({e})", path.display()))
        .collect();
    Ok((events, problems))
}

/// Why a journal could not be replayed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading journal {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a deckhand event (is this a journal file?): {source}")]
    NotAnEvent {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}: the journal holds no events")]
    Empty { path: String },
}

/// Read a journal to replay it: every line must be an event, and there must be at least one.
pub(crate) fn read_for_replay(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let shown = path.display().to_string();
    let (events, bad) = read_events(path).map_err(|source| ReplayError::Read {
        path: shown.clone(),
        source,
    })?;
    if let Some((line, source)) = bad.into_iter().next() {
        return Err(ReplayError::NotAnEvent {
            path: shown,
            line,
            source,
        });
    }
    if events.is_empty() {
        return Err(ReplayError::Empty { path: shown });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_belongs_to_its_own_environment_only() {
        let id = new_deployment_id();
        let name = journal_name("shop", "prod", &id);
        assert!(is_journal_of(&name, "shop", "prod"));
        assert!(!is_journal_of(&name, "shop", "prod-eu"));
        let eu = journal_name("shop", "prod-eu", &id);
        assert!(is_journal_of(&eu, "shop", "prod-eu"));
        assert!(!is_journal_of(&eu, "shop", "prod"));
        assert!(!is_journal_of(&eu, "shop", "prod-e"));
        assert!(!is_journal_of(&format!("{name}.bak"), "shop", "prod"));
        assert!(!is_journal_of("shop-prod-x.jsonl", "shop", "prod"));
    }
}
