//! Finding a deployment that did not finish (the console was killed, the jump host rebooted) and
//! what it knew: its deployment id, its release, and each node's release before it started. The
//! real state is read from the nodes by the caller; the journal only says what was intended.
//!
//! Also the rules for resuming it: what each node looks like beside the record ([`rows`]), where
//! `--rollback` sends each node ([`rollback_target`]), and whether the console that ran it is
//! still alive ([`console`]): a live console's deployment is never taken over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::status::NodeStatus;
use crate::engine::RollbackTarget;
use crate::event::{EventKind, RunKind};
use crate::journal::{is_journal_of, read_journal};

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
        /// Its deployment id (a lock it could not release still names it).
        deployment: String,
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
        // Names can collide (app `shop` + env `prod-eu` and app `shop-prod` + env `eu` give the
        // same file name): a journal whose start names another app or environment is not ours.
        let someone_else = events.iter().any(|e| match &e.kind {
            EventKind::Started {
                app: a, env: en, ..
            } => a != app || en != env,
            _ => false,
        });
        if someone_else {
            continue;
        }
        // A run that ended (it has its outcome) without the lock changed nothing; one that
        // started and has no outcome was killed, possibly between taking the nodes' locks and
        // recording it: it is the one to resume.
        let finished = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Finished { .. }));
        if took_lock || !started || !finished {
            break (path, events, problems);
        }
    };
    if let Some(outcome) = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { outcome, .. } => Some(outcome.word().to_string()),
        _ => None,
    }) {
        let deployment = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Started { deployment, .. } => Some(deployment.clone()),
                _ => None,
            })
            .unwrap_or_default();
        return Ok(Found::Finished {
            journal: path,
            outcome,
            deployment,
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

/// One node of an interrupted deployment, as the operator sees it before choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    /// Its release before the interrupted run.
    pub before: String,
    /// Its release now, or why it could not be read.
    pub now: String,
    /// Who holds its lock, in words.
    pub lock: String,
}

/// What is true now on each node, beside what the interrupted run recorded.
pub fn rows(int: &Interrupted, statuses: &[NodeStatus]) -> Vec<NodeRow> {
    statuses
        .iter()
        .map(|s| {
            let before = int
                .before
                .get(&s.node)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "-".into());
            let now = match (&s.live_release, &s.error) {
                (_, Some(err)) => format!("unreachable: {err}"),
                (Some(r), _) => r.clone(),
                (None, _) => "-".into(),
            };
            let lock = match &s.lock {
                Some(l) if l.id == int.deployment => "held by the interrupted run".to_string(),
                Some(l) => format!("held by another deployment: {}", l.describe()),
                None if s.locked => "held (holder unreadable)".into(),
                None => "-".into(),
            };
            NodeRow {
                node: s.node.clone(),
                before,
                now,
                lock,
            }
        })
        .collect()
}

/// `resume --rollback`: each node back to its release before the interrupted run; the release
/// that run was deploying is removed where it is not live.
pub fn rollback_target(int: &Interrupted) -> RollbackTarget {
    RollbackTarget::Resume {
        to: int
            .before
            .iter()
            .filter_map(|(n, r)| r.clone().map(|r| (n.clone(), r)))
            .collect(),
        abandon: int.release.clone(),
    }
}

/// Whether the console that holds a deployment's lock is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// Nothing holds the lock, or its console is gone (on this host: its process ended).
    Gone,
    /// Its console is running: never take its deployment over.
    Alive(Holder),
    /// Another host's console stopped refreshing the heartbeat: taken over only when the
    /// operator says so (`--take-over-stale`).
    Stale(Holder),
}

/// Who holds a deployment's lock, and how fresh its heartbeat is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// Seconds since the freshest heartbeat among the nodes.
    pub heartbeat_age_s: Option<u64>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} (pid {})", self.who, self.host, self.pid)?;
        match self.heartbeat_age_s {
            Some(a) => write!(f, ", heartbeat {a}s ago"),
            None => write!(f, ", heartbeat unknown"),
        }
    }
}

/// Decide whether deployment `id`'s console is alive, from its locks on the nodes. On this host
/// the console's process decides (`pid_alive`); elsewhere the heartbeat does: fresh is alive,
/// older than `stale_after` is stale.
pub fn console(
    id: &str,
    statuses: &[NodeStatus],
    this_host: &str,
    stale_after: std::time::Duration,
    pid_alive: impl Fn(u32) -> bool,
) -> Console {
    let mine: Vec<&NodeStatus> = statuses
        .iter()
        .filter(|s| s.lock.as_ref().is_some_and(|l| l.id == id))
        .collect();
    let Some(first) = mine.first().and_then(|s| s.lock.clone()) else {
        return Console::Gone;
    };
    let holder = Holder {
        who: first.who.clone(),
        host: first.host.clone(),
        pid: first.pid,
        heartbeat_age_s: mine.iter().filter_map(|s| s.lock_age_s).min(),
    };
    if first.host == this_host {
        return if pid_alive(first.pid) {
            Console::Alive(holder)
        } else {
            Console::Gone
        };
    }
    if crate::engine::remote::lock_is_stale(holder.heartbeat_age_s, stale_after) {
        Console::Stale(holder)
    } else {
        Console::Alive(holder)
    }
}

/// Whether process `pid` on this machine is a running deckhand (a reused pid is not).
pub fn deckhand_process_alive(pid: u32) -> bool {
    if pid <= 1 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => cmd
            .split(|b| *b == 0)
            .next()
            .map(|argv0| String::from_utf8_lossy(argv0).contains("deckhand"))
            .unwrap_or(false),
        // No /proc to tell: trust that it exists.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::remote::LockInfo;
    use std::time::{Duration, SystemTime};

    fn locked(node: &str, id: &str, host: &str, age: u64) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            host: "10.0.0.1".into(),
            reachable: true,
            error: None,
            live_release: Some("v1".into()),
            previous_release: None,
            releases: vec![],
            lock: Some(LockInfo {
                id: id.into(),
                who: "ann".into(),
                host: host.into(),
                pid: 4242,
                at: "t".into(),
                env: "prod".into(),
                release: "v2".into(),
            }),
            locked: true,
            lock_age_s: Some(age),
            free_kb: None,
            verified: vec![],
            progress: None,
            history: vec![],
        }
    }

    fn interrupted() -> Interrupted {
        Interrupted {
            journal: PathBuf::from("/j"),
            deployment: "d1".into(),
            kind: RunKind::Deploy,
            release: "v2".into(),
            before: [
                ("web-1".to_string(), Some("v1".to_string())),
                ("web-2".to_string(), Some("v1".to_string())),
                ("web-3".to_string(), None),
            ]
            .into_iter()
            .collect(),
            last: "web-2 build".into(),
            problems: vec![],
        }
    }

    /// What the operator is shown per node: the release before the run, now, and the lock.
    #[test]
    fn resume_rows_say_what_is_true_now_beside_what_the_run_recorded() {
        let mut switched = locked("web-1", "d1", "jump-1", 5);
        switched.live_release = Some("v2".into());
        let other = locked("web-2", "d9", "jump-2", 5);
        let mut down = locked("web-3", "d1", "jump-1", 5);
        down.error = Some("connection refused".into());
        down.lock = None;
        down.locked = false;
        let mut unreadable = locked("web-4", "d1", "jump-1", 5);
        unreadable.lock = None;
        let rows = rows(&interrupted(), &[switched, other, down, unreadable]);
        let r: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.node.as_str(),
                    r.before.as_str(),
                    r.now.as_str(),
                    r.lock.as_str(),
                )
            })
            .collect();
        assert_eq!(r[0], ("web-1", "v1", "v2", "held by the interrupted run"));
        assert_eq!(
            r[1].3,
            "held by another deployment: ann on jump-2 (pid 4242) since t, deploying v2 to prod [deployment d9]"
        );
        assert_eq!(r[2], ("web-3", "-", "unreachable: connection refused", "-"));
        assert_eq!(r[3], ("web-4", "-", "v1", "held (holder unreadable)"));
    }

    /// `resume --rollback` sends each node to its release before the run; a node that had none
    /// is not moved, and the release being deployed is the one abandoned.
    #[test]
    fn a_resume_rollback_targets_each_node_s_release_before_the_run() {
        match rollback_target(&interrupted()) {
            RollbackTarget::Resume { to, abandon } => {
                assert_eq!(abandon, "v2");
                assert_eq!(to.get("web-1").map(String::as_str), Some("v1"));
                assert_eq!(to.get("web-2").map(String::as_str), Some("v1"));
                assert!(!to.contains_key("web-3"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn on_this_host_the_consoles_process_decides() {
        let s = [locked("web-1", "d1", "jump-1", 500)];
        let after = Duration::from_secs(60);
        assert!(matches!(
            console("d1", &s, "jump-1", after, |_| true),
            Console::Alive(_)
        ));
        // Fresh heartbeat, but the process is gone (killed a moment ago): resumable.
        let fresh = [locked("web-1", "d1", "jump-1", 2)];
        assert_eq!(
            console("d1", &fresh, "jump-1", after, |_| false),
            Console::Gone
        );
    }

    #[test]
    fn from_another_host_the_heartbeat_decides() {
        let after = Duration::from_secs(60);
        let s = [
            locked("web-1", "d1", "jump-2", 75),
            locked("web-2", "d1", "jump-2", 4),
        ];
        match console("d1", &s, "jump-1", after, |_| false) {
            Console::Alive(h) => {
                assert_eq!(h.heartbeat_age_s, Some(4));
                assert_eq!(h.to_string(), "ann on jump-2 (pid 4242), heartbeat 4s ago");
            }
            other => panic!("{other:?}"),
        }
        let stale = [locked("web-1", "d1", "jump-2", 75)];
        assert!(matches!(
            console("d1", &stale, "jump-1", after, |_| true),
            Console::Stale(_)
        ));
    }

    #[test]
    fn a_deployment_that_holds_no_lock_has_no_console() {
        let s = [locked("web-1", "other", "jump-1", 1)];
        assert_eq!(
            console("d1", &s, "jump-1", Duration::from_secs(60), |_| true),
            Console::Gone
        );
    }

    #[test]
    fn this_process_is_a_live_process_and_pid_one_is_never_taken() {
        // The test binary's name does not say deckhand unless cargo named it so.
        let me = std::process::id();
        let argv0 = std::fs::read_to_string(format!("/proc/{me}/cmdline")).unwrap_or_default();
        assert_eq!(deckhand_process_alive(me), argv0.contains("deckhand"));
        assert!(!deckhand_process_alive(1));
        assert!(!deckhand_process_alive(0));
    }

    #[test]
    fn journals_whose_names_collide_are_told_apart_by_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let started = |app: &str, env: &str| {
            format!("{{\"seq\":1,\"at_ms\":1,\"type\":\"started\",\"deployment\":\"20260101T100000Z-1a2b\",\"kind\":\"deploy\",\"app\":\"{app}\",\"env\":\"{env}\",\"release\":\"v2\",\"strategy\":\"rolling\",\"who\":\"ann\",\"from_host\":\"j\",\"nodes\":[],\"batches\":[],\"gates\":[],\"phases\":[],\"protected\":false,\"balancer\":false,\"journal\":null}}\n")
        };
        // shop-prod in eu finished; shop in prod-eu, under the same file name pattern and newer,
        // was interrupted.
        journal(
            dir.path(),
            "shop-prod-eu-20260101T100000Z-1a2b.jsonl",
            &format!("{}{LOCKED}{FINISHED}", started("shop-prod", "eu")),
            Duration::from_secs(600),
        );
        journal(
            dir.path(),
            "shop-prod-eu-20260101T110000Z-3c4d.jsonl",
            &format!("{}{LOCKED}", started("shop", "prod-eu")),
            Duration::ZERO,
        );
        assert!(matches!(
            find(dir.path(), "shop-prod", "eu"),
            Ok(Found::Finished { .. })
        ));
        assert!(matches!(
            find(dir.path(), "shop", "prod-eu"),
            Ok(Found::Interrupted(_))
        ));
    }

    /// The console was killed after it took the nodes' locks but before its journal said so:
    /// that run, not the finished one before it, is the one to resume.
    #[test]
    fn a_run_killed_before_its_journal_recorded_the_lock_is_the_one_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let started = |id: &str, release: &str| {
            format!("{{\"seq\":1,\"at_ms\":1,\"type\":\"started\",\"deployment\":\"{id}\",\"kind\":\"deploy\",\"app\":\"shop\",\"env\":\"prod\",\"release\":\"{release}\",\"strategy\":\"rolling\",\"who\":\"ann\",\"from_host\":\"j\",\"nodes\":[],\"batches\":[],\"gates\":[],\"phases\":[],\"protected\":false,\"balancer\":false,\"journal\":null}}\n")
        };
        journal(
            dir.path(),
            "shop-prod-20260101T100000Z-1a2b.jsonl",
            &format!(
                "{}{LOCKED}{FINISHED}",
                started("20260101T100000Z-1a2b", "v1")
            ),
            Duration::from_secs(600),
        );
        journal(
            dir.path(),
            "shop-prod-20260101T110000Z-3c4d.jsonl",
            &started("20260101T110000Z-3c4d", "v2"),
            Duration::ZERO,
        );
        match find(dir.path(), "shop", "prod") {
            Ok(Found::Interrupted(i)) => {
                assert_eq!(i.deployment, "20260101T110000Z-3c4d");
                assert_eq!(i.release, "v2");
            }
            other => panic!("resume looked at {other:?}"),
        }
    }

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
            Ok(Found::Finished {
                journal, outcome, ..
            }) => {
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
