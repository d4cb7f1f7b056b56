//! The single exit of every event: numbers it, masks secrets in every string it carries, appends
//! it (flushed) to the JSONL journal, then hands it to whoever watches (screen, printer).
//!
//! Because all events pass through one [`Emitter`], the journal and the screen can never
//! disagree, and no secret can reach either unmasked.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::mpsc;

use std::sync::Arc;

use crate::event::{Event, EventKind, Level};
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

