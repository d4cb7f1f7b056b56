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

/// Something inside the engine that follows the events as they go out (the lock's progress).
type Observer = Box<dyn Fn(&Event) + Send + Sync>;

pub struct Emitter {
    inner: Mutex<Inner>,
    observers: Mutex<Vec<Observer>>,
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

/// Append one event to the journal as one whole line. A write that fails part-way (the disk
/// filled up in the middle of the line) is taken back: the file is cut to where the line began,
/// so the lines written after it, once there is room again, stay lines of their own and the
/// journal reads line by line (with a gap the run's notice explains) instead of gluing the
/// broken start to the next event.
fn append_line(f: &mut File, event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).unwrap_or_default();
    line.push('\n');
    let before = f.metadata().map(|m| m.len());
    let wrote = f.write_all(line.as_bytes()).and_then(|_| f.flush());
    if wrote.is_err() {
        if let Ok(len) = before {
            let _ = f.set_len(len);
        }
    }
    wrote
}

/// What goes out instead of an event that cannot be masked.
fn withheld_notice() -> EventKind {
    EventKind::Notice {
        level: Level::Error,
        message: "an event was withheld: one of its words equals a secret value, and masking it left something that is not an event; use secret values that are not deckhand's own words".into(),
    }
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
            observers: Mutex::new(Vec::new()),
            tx,
            secrets,
            journal_path,
            notifier,
        }
    }

    /// Follow every event as it goes out (masked, numbered), after the journal.
    pub(crate) fn observe(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        match self.observers.lock() {
            Ok(mut o) => o.push(Box::new(f)),
            Err(p) => p.into_inner().push(Box::new(f)),
        }
    }

    pub(crate) fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref()
    }

    pub(crate) fn journal_path(&self) -> Option<&Path> {
        self.journal_path.as_deref()
    }

    pub(crate) fn emit(&self, kind: EventKind) {
        let Some(kind) = self.mask(kind).or_else(|| self.mask(withheld_notice())) else {
            // Even the notice would show a secret (a secret equal to one of its words): nothing
            // goes out.
            log::error!("an event was withheld: masking a secret in it left no event");
            return;
        };
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
            if let Err(e) = append_line(f, &event) {
                failed = Some(e);
            }
        }
        if let Some(n) = &self.notifier {
            n.observe(&event);
        }
        if let Ok(observers) = self.observers.lock() {
            for o in observers.iter() {
                o(&event);
            }
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

    /// The event with every secret masked. None when masking leaves something that is not an
    /// event (a secret equal to one of deckhand's own words, such as a status or a type): such
    /// an event is withheld, never sent unmasked.
    fn mask(&self, kind: EventKind) -> Option<EventKind> {
        if self.secrets.is_empty() {
            return Some(kind);
        }
        let mut v = serde_json::to_value(&kind).ok()?;
        let before = v.clone();
        self.secrets.mask_json(&mut v);
        if v == before {
            return Some(kind);
        }
        serde_json::from_value(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;

    fn emitter(secrets: &[&str]) -> (Emitter, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let secrets = Secrets::new(secrets.iter().map(|s| s.to_string()));
        (Emitter::new(tx, secrets, None, None), rx)
    }

    #[test]
    fn a_secret_in_free_text_is_masked() {
        let (em, mut rx) = emitter(&["hunter22"]);
        em.notice(Level::Info, "password hunter22 set");
        let e = rx.try_recv().expect("event");
        assert_eq!(
            e.kind,
            EventKind::Notice {
                level: Level::Info,
                message: "password **** set".into()
            }
        );
    }

    #[test]
    fn an_event_whose_masked_form_is_not_an_event_is_withheld_with_a_notice() {
        // A secret equal to an outcome word: masking `deployed` breaks the event.
        let (em, mut rx) = emitter(&["deployed"]);
        em.emit(EventKind::Finished {
            outcome: Outcome::Deployed,
            message: "v2 is live".into(),
            nodes: vec![],
        });
        let e = rx.try_recv().expect("a notice in its place");
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("deployed"), "{line}");
        assert!(
            matches!(&e.kind, EventKind::Notice { level: Level::Error, message } if message.contains("withheld")),
            "{e:?}"
        );
        assert!(rx.try_recv().is_err(), "nothing else went out");
        // Events the secret does not touch go out as they are.
        em.emit(EventKind::Locked {
            deployment: "d1".into(),
        });
        assert!(matches!(
            rx.try_recv().map(|e| e.kind),
            Ok(EventKind::Locked { .. })
        ));
    }

    #[test]
    fn when_even_the_notice_would_show_the_secret_nothing_goes_out() {
        let (em, mut rx) = emitter(&["notice"]);
        em.notice(Level::Warn, "plain words");
        assert!(rx.try_recv().is_err());
    }
}
