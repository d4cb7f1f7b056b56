//! The single exit of every event: numbers it, masks secrets in every string it carries, appends
//! it (flushed) to the JSONL journal, then hands it to whoever watches (screen, printer).
//!
//! Because all events pass through one [`Emitter`], the journal and the screen can never
//! disagree, and no secret can reach either unmasked.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::mpsc;

use std::sync::Arc;

use super::event::{Event, EventKind, Level};
use crate::notify::Notifier;
use crate::secrets::Secrets;

pub struct Emitter {
    inner: Mutex<Inner>,
    notifier: Option<Arc<Notifier>>,
    tx: mpsc::UnboundedSender<Event>,
    secrets: Secrets,
    journal_path: Option<PathBuf>,
}

struct Inner {
    seq: u64,
    journal: Option<File>,
    journal_error_reported: bool,
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
pub fn journal_name(app: &str, env: &str, id: &str) -> String {
    format!("{app}-{env}-{id}.jsonl")
}

/// Whether the file called `file` is the journal of a run of `app` in `env`. Environment names
/// may contain `-`, so what follows `{app}-{env}-` must be a whole deployment id: the journals
/// of `prod-eu` are not journals of `prod`.
pub fn is_journal_of(file: &str, app: &str, env: &str) -> bool {
    file.strip_prefix(&format!("{app}-{env}-"))
        .and_then(|rest| rest.strip_suffix(".jsonl"))
        .is_some_and(super::run::is_deployment_id)
}

/// Create a journal file readable only by its owner (mode 0600, directory 0700).
pub fn create_journal(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
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

impl Emitter {
    pub fn new(
        tx: mpsc::UnboundedSender<Event>,
        secrets: Secrets,
        journal: Option<(PathBuf, File)>,
        notifier: Option<Arc<Notifier>>,
    ) -> Self {
        let (journal_path, file) = match journal {
            Some((p, f)) => (Some(p), Some(f)),
            None => (None, None),
        };
        Emitter {
            inner: Mutex::new(Inner {
                seq: 0,
                journal: file,
                journal_error_reported: false,
            }),
            tx,
            secrets,
            journal_path,
            notifier,
        }
    }

    pub fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref()
    }

    pub fn journal_path(&self) -> Option<&Path> {
        self.journal_path.as_deref()
    }

    pub fn emit(&self, kind: EventKind) {
        let kind = self.mask(kind);
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        inner.seq += 1;
        let event = Event {
            seq: inner.seq,
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind,
        };
        let mut failed = None;
        if let Some(f) = inner.journal.as_mut() {
            let line = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                failed = Some(e);
            }
        }
        if let Some(n) = &self.notifier {
            n.observe(&event);
        }
        let _ = self.tx.send(event);
        if let Some(e) = failed {
            if !inner.journal_error_reported {
                inner.journal_error_reported = true;
                drop(inner);
                self.emit(EventKind::Notice {
                    level: Level::Error,
                    message: format!("cannot write the journal: {e}; the run goes on, but it will be missing from the record"),
                });
            }
        }
    }

    pub fn notice(&self, level: Level, message: impl Into<String>) {
        self.emit(EventKind::Notice {
            level,
            message: message.into(),
        });
    }

    fn mask(&self, kind: EventKind) -> EventKind {
        if self.secrets.is_empty() {
            return kind;
        }
        match serde_json::to_value(&kind) {
            Ok(mut v) => {
                self.secrets.mask_json(&mut v);
                serde_json::from_value(v).unwrap_or(kind)
            }
            Err(_) => kind,
        }
    }
}

/// A journal line that is not an event: its number (from 1) and why.
pub type BadLine = (usize, serde_json::Error);

/// Read a journal back: its events, and the lines that are not events, for the caller to word.
/// A truncated last line (a crash mid-write) is one of those.
pub fn read_events(path: &Path) -> std::io::Result<(Vec<Event>, Vec<BadLine>)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::run::new_deployment_id;

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
