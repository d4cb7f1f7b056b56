//! Finding a deployment that did not finish (the console was killed, the jump host rebooted) and
//! what it knew: its deployment id, its release, and each node's release before it started. The
//! real state is read from the nodes by the caller; the journal only says what was intended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::journal::{is_journal_of, read_journal};
use crate::event::{EventKind, RunKind};

#[derive(Debug, Clone)]
pub struct Interrupted {
    pub journal: PathBuf,
    pub deployment: String,
    pub kind: RunKind,
    pub release: String,
    /// Each node's live release when the interrupted run started (None: it had none).
    pub before: BTreeMap<String, Option<String>>,
    /// The last thing the journal recorded, for the operator.
    pub last: String,
    /// Lines of the journal that could not be read (a crash mid-write).
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub enum Found {
    /// The newest deployment of this app and environment finished; nothing to resume.
    Finished {
        journal: PathBuf,
        outcome: String,
    },
    Interrupted(Interrupted),
    Nothing,
}

/// Look at the newest journal of `app` in `env` under `dir`.
pub fn find(dir: &Path, app: &str, env: &str) -> Result<Found, String> {
    let mut journals: Vec<(std::time::SystemTime, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| is_journal_of(&e.file_name().to_string_lossy(), app, env))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect(),
        Err(_) => return Ok(Found::Nothing),
    };
    journals.sort();
    // The newest run that took the lock: runs refused at preflight or at the lock changed nothing.
    let (path, events, problems) = loop {
        let Some((_, path)) = journals.pop() else {
            return Ok(Found::Nothing);
        };
        let (events, problems) =
            read_journal(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let took_lock = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Locked { .. }));
        let started = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Started { .. }));
        if took_lock || !started {
            break (path, events, problems);
        }
    };
    if let Some(outcome) = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { outcome, .. } => Some(outcome.word().to_string()),
        _ => None,
    }) {
        return Ok(Found::Finished {
            journal: path,
            outcome,
        });
    }
    let Some((deployment, kind, release)) = events.iter().find_map(|e| match &e.kind {
        EventKind::Started {
            deployment,
            kind,
            release,
            ..
        } => Some((deployment.clone(), *kind, release.clone())),
        _ => None,
    }) else {
        return Err(format!(
            "{} has no start record{}; it cannot be trusted to resume from",
            path.display(),
            if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join("; "))
            }
        ));
    };
    let mut before = BTreeMap::new();
    for e in &events {
        if let EventKind::Preflight {
            node,
            ok: true,
            live_release,
            ..
        } = &e.kind
        {
            before.insert(node.clone(), live_release.clone());
        }
    }
    let last = events
        .last()
        .map(|e| {
            let t = chrono::DateTime::from_timestamp_millis(e.at_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            let what = serde_json::to_value(&e.kind)
                .ok()
                .and_then(|v| v["type"].as_str().map(String::from))
                .unwrap_or_default();
            format!(
                "{what} at {t}{}",
                e.kind
                    .node()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    Ok(Found::Interrupted(Interrupted {
        journal: path,
        deployment,
        kind,
        release,
        before,
        last,
        problems,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const LOCKED: &str = "{\"seq\":1,\"at_ms\":1,\"type\":\"locked\",\"deployment\":\"d\"}\n";
    const FINISHED: &str = "{\"seq\":2,\"at_ms\":2,\"type\":\"finished\",\"outcome\":\"deployed\",\"message\":\"done\",\"nodes\":[]}\n";

    /// A journal file written `age` ago.
    fn journal(dir: &Path, name: &str, text: &str, age: Duration) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        p
    }

    #[test]
    fn an_environment_is_not_confused_with_one_whose_name_extends_it() {
        let dir = tempfile::tempdir().unwrap();
        // prod's last run finished; prod-eu's, newer, stopped before it recorded its start.
        let prod = journal(
            dir.path(),
            "shop-prod-20260101T100000Z-1a2b.jsonl",
            &format!("{LOCKED}{FINISHED}"),
            Duration::from_secs(600),
        );
        journal(
            dir.path(),
            "shop-prod-eu-20260101T110000Z-3c4d.jsonl",
            LOCKED,
            Duration::ZERO,
        );
        match find(dir.path(), "shop", "prod") {
            Ok(Found::Finished { journal, outcome }) => {
                assert_eq!(journal, prod);
                assert_eq!(outcome, "deployed");
            }
            other => panic!("resume of prod looked at {other:?}"),
        }
        // prod-eu still finds its own journal.
        let err = find(dir.path(), "shop", "prod-eu").unwrap_err();
        assert!(
            err.contains("shop-prod-eu-20260101T110000Z-3c4d.jsonl"),
            "{err}"
        );
    }
}
