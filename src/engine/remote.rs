//! The on-node layout and the shell scripts that read and change it, for any transport.
//!
//! ```text
//! {deploy_path}/releases/<release>/     one directory per release
//! {deploy_path}/shared/                 files and dirs linked into every release
//! {deploy_path}/current -> releases/<release>   switched atomically (rename over)
//! {deploy_path}/.deckhand/lock/info.json        the lock (mkdir is the atomic test-and-set)
//! {deploy_path}/.deckhand/lock/progress.json    how far the holder's run is (for watchers)
//! {deploy_path}/.deckhand/history.jsonl         one line per deployment or rollback
//! ```
//! Scripts are built here with every value quoted; decisions (which release is previous, what
//! cleanup may delete) are made in Rust from what the scripts read, so they can be unit-tested.
//! `exec_checked` and `read_snapshot` are the one way the engine runs its own bookkeeping
//! scripts on a node (quietly, under `STATE_TIMEOUT`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::transport::{ExecOutcome, ExecRequest, Transport};
use crate::util::{sh_quote, valid_release};

/// How long one of the engine's own scripts (state, lock, history, unlock) may take on a node.
pub(crate) const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one of the engine's own scripts did not succeed on a node.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The transport could not run it at all.
    #[error("{0}")]
    Transport(#[from] crate::transport::TransportError),
    /// It ran and failed (exit status, timeout, kill).
    #[error("{}", .0.describe_failure(Some(STATE_TIMEOUT)))]
    Failed(Box<ExecOutcome>),
    /// It ran, but what it printed is not a whole answer (cut short): never read as a state.
    #[error("the node's answer was cut short ({0}); nothing is assumed about its state")]
    Incomplete(String),
}

/// Run one of the engine's own scripts on a node: no output streamed, [`STATE_TIMEOUT`], and
/// anything but a clean exit is an error.
pub(crate) async fn exec_checked(
    t: &dyn Transport,
    script: String,
    cancel: &CancellationToken,
) -> Result<ExecOutcome, ScriptError> {
    let o = t
        .exec(
            &ExecRequest::new(script).timeout(STATE_TIMEOUT),
            None,
            cancel,
        )
        .await?;
    if o.success() {
        Ok(o)
    } else {
        Err(ScriptError::Failed(Box::new(o)))
    }
}

/// Read what the node under `dp` looks like now ([`state_script`], then [`parse_state`]).
pub(crate) async fn read_snapshot(
    t: &dyn Transport,
    dp: &str,
    cancel: &CancellationToken,
) -> Result<NodeSnapshot, ScriptError> {
    let o = exec_checked(t, state_script(dp), cancel).await?;
    parse_state(&o.stdout).map_err(ScriptError::Incomplete)
}

/// Who holds a node's lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub at: String,
    pub env: String,
    pub release: String,
}

impl LockInfo {
    pub fn describe(&self) -> String {
        format!(
            "{} on {} (pid {}) since {}, deploying {} to {} [deployment {}]",
            self.who, self.host, self.pid, self.at, self.release, self.env, self.id
        )
    }
}

/// A lock is stale once its heartbeat is `stale_after` old: the console holding it stopped
/// refreshing it. An unknown age is not stale.
pub(crate) fn lock_is_stale(age_s: Option<u64>, stale_after: Duration) -> bool {
    age_s.is_some_and(|a| a >= stale_after.as_secs())
}

/// How alive a lock is, from its heartbeat's age, to follow its holder in a message:
/// ` — STALE: no heartbeat for 75s`, ` — alive: heartbeat 3s ago`, or nothing when unknown.
pub fn lock_age_note(age_s: Option<u64>, stale_after: Duration) -> String {
    match age_s {
        Some(a) if lock_is_stale(age_s, stale_after) => {
            format!(" — STALE: no heartbeat for {a}s")
        }
        Some(a) => format!(" — alive: heartbeat {a}s ago"),
        None => String::new(),
    }
}

/// One line of a node's `history.jsonl`.
///
/// Per node and run: `deploy`, `rollback` or `verified` lines as each node's turn ends, and one
/// `finished` line when the run ends (its outcome, failed nodes, who ran it from where). Fields
/// added after the first version are optional, so older lines still read, and older readers
/// skip the `finished` kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: String,
    /// `deploy`, `rollback`, `verified`, or `finished` (the run's end).
    pub kind: String,
    pub release: String,
    pub from: Option<String>,
    pub who: String,
    pub at: String,
    /// `ok` or `failed`; on a `finished` line, the run's outcome in words (`deployed`,
    /// `rolled back`, ...).
    pub result: String,
    /// The host the run was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The environment of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// What the run was: `deploy`, `rollback`, `resume` or `promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// When the run started (RFC 3339), on `finished` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// The nodes that failed in the run, on `finished` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl HistoryEntry {
    /// A line with only the first version's fields set.
    pub fn new(id: &str, kind: &str, release: &str, who: &str, at: &str, result: &str) -> Self {
        HistoryEntry {
            id: id.into(),
            kind: kind.into(),
            release: release.into(),
            from: None,
            who: who.into(),
            at: at.into(),
            result: result.into(),
            host: None,
            env: None,
            run: None,
            started: None,
            failed: vec![],
        }
    }
}

/// How far a running deployment is, as its holder records it beside the lock (for `status`,
/// the home screen and `watch`). Written by the lock's heartbeat when it changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    /// The deployment id (the lock's).
    pub id: String,
    /// `deploy` or `rollback`.
    #[serde(default)]
    pub kind: String,
    /// `deploying`, `pausing`, `paused`, `stepping`, `waiting` (a gate), `rolling back`, `aborting`,
    /// `checklist` (the monitoring window), or how it ended.
    pub state: String,
    /// The batch running now, from 1 (None before the first batch).
    #[serde(default)]
    pub batch: Option<usize>,
    #[serde(default)]
    pub batches: usize,
    /// Nodes that finished their turn, and the run's node count.
    #[serde(default)]
    pub done: usize,
    #[serde(default)]
    pub total: usize,
    /// The nodes in flight and what each is doing.
    #[serde(default)]
    pub nodes: Vec<NodeProgress>,
    /// When this was written (ms since the epoch, the holder's clock).
    #[serde(default)]
    pub at_ms: i64,
}

/// One node in flight.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeProgress {
    pub node: String,
    /// The node's state in words (`draining`, `updating`, ...).
    pub state: String,
    /// The phase running on it, if any.
    #[serde(default)]
    pub phase: Option<String>,
}

impl Progress {
    /// `batch 2/3 · web-4 switch · 3/5 done`, for status lines.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.state.clone()];
        if let Some(b) = self.batch {
            parts.push(format!("batch {b}/{}", self.batches));
        }
        let busy: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.phase {
                Some(p) => format!("{} {p}", n.node),
                None => format!("{} {}", n.node, n.state),
            })
            .collect();
        if !busy.is_empty() {
            parts.push(busy.join(", "));
        }
        if self.total > 0 {
            parts.push(format!("{}/{} done", self.done, self.total));
        }
        parts.join(" · ")
    }
}

/// What a node looks like right now, as read by `state_script`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    pub current: Option<String>,
    /// Lock held: parsed holder, or None with `locked` set when the info is unreadable.
    pub locked: bool,
    pub lock: Option<LockInfo>,
    /// Seconds since the lock's heartbeat was last refreshed.
    pub lock_age_s: Option<u64>,
    pub history: Vec<HistoryEntry>,
    /// How far the lock holder's run is (when it records it).
    pub progress: Option<Progress>,
    /// Release directories, newest first.
    pub releases: Vec<String>,
    pub free_kb: Option<u64>,
}

impl NodeSnapshot {
    /// The release that was live before the current one: from history, else the next newest
    /// release directory.
    pub fn previous(&self) -> Option<String> {
        let current = self.current.as_ref()?;
        let from_history = self
            .history
            .iter()
            .rev()
            .find(|h| h.kind == "deploy" && h.result == "ok" && &h.release == current)
            .and_then(|h| h.from.clone())
            .filter(|p| p != current && self.releases.contains(p));
        from_history.or_else(|| {
            let pos = self.releases.iter().position(|r| r == current)?;
            self.releases.get(pos + 1).cloned()
        })
    }
}

pub fn release_path(dp: &str, release: &str) -> String {
    format!("{}/releases/{}", dp.trim_end_matches('/'), release)
}

/// The last line of a whole state answer. An answer without it was cut short.
const STATE_END: &str = "end=deckhand-state";

/// Read the node's state: `key=value` lines, parsed by [`parse_state`], then an end marker.
pub(crate) fn state_script(dp: &str) -> String {
    format!(
        "cd {dp} 2>/dev/null || {{ echo missing=1; echo {STATE_END}; exit 0; }}\n\
         printf 'current=%s\\n' \"$(readlink current 2>/dev/null)\"\n\
         if [ -d .deckhand/lock ]; then printf 'lock=%s\\n' \"$(tr -d '\\n' < .deckhand/lock/info.json 2>/dev/null)\"; \
         hb=$(stat -c %Y .deckhand/lock/heartbeat 2>/dev/null || stat -c %Y .deckhand/lock); printf 'lock_age=%s\\n' $(( $(date +%s) - hb )); \
         if [ -f .deckhand/lock/progress.json ]; then printf 'progress=%s\\n' \"$(tr -d '\\n' < .deckhand/lock/progress.json 2>/dev/null)\"; fi; fi\n\
         if [ -f .deckhand/history.jsonl ]; then tail -n 200 .deckhand/history.jsonl | sed 's/^/history=/'; fi\n\
         if [ -d releases ]; then ls -1t releases | sed 's/^/release=/'; fi\n\
         df -Pk . 2>/dev/null | awk 'NR==2 {{print \"free_kb=\" $4}}'\n\
         echo {STATE_END}\n",
        dp = sh_quote(dp)
    )
}

/// The release a `current` link points at (`releases/v1.0` or an absolute path → `v1.0`).
pub(crate) fn release_of_link(target: &str) -> Option<String> {
    let t = target.trim().trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    let name = t.rsplit('/').next()?;
    Some(name.to_string()).filter(|n| !n.is_empty())
}

/// Parse a state answer. Err when it does not end with the end marker: an answer cut short
/// (output lost, a node that stopped mid-way) must never read as a fresh or unlocked node.
pub(crate) fn parse_state(out: &str) -> Result<NodeSnapshot, String> {
    let lines: Vec<&str> = out.lines().collect();
    match lines.last() {
        Some(&last) if last == STATE_END => {}
        Some(_) => return Err(format!("no end marker after {} lines", lines.len())),
        None => return Err("no output at all".into()),
    }
    let mut s = NodeSnapshot::default();
    for line in &lines[..lines.len() - 1] {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "current" => s.current = release_of_link(v),
            "lock" => {
                s.locked = true;
                s.lock = serde_json::from_str(v).ok();
            }
            "progress" => s.progress = serde_json::from_str(v).ok(),
            "history" => {
                if let Ok(h) = serde_json::from_str(v) {
                    s.history.push(h);
                }
            }
            "release" if valid_release(v) => s.releases.push(v.to_string()),
            "free_kb" => s.free_kb = v.trim().parse().ok(),
            "lock_age" => s.lock_age_s = v.trim().parse::<i64>().ok().map(|a| a.max(0) as u64),
            _ => {}
        }
    }
    Ok(s)
}

/// Take the lock with an atomic `mkdir`; prints `acquired`, or `held` and the holder's info.
/// With `replace_id`, a lock held by exactly that deployment is taken over (resume, or a stale
/// lock the operator chose to take): its info is rewritten in place, never removed first.
pub(crate) fn lock_script(dp: &str, info: &LockInfo, replace_id: Option<&str>) -> String {
    let json = serde_json::to_string(info).unwrap_or_default();
    let takeover = match replace_id {
        Some(id) => format!(
            "elif grep -qF -- {id} {dp}/.deckhand/lock/info.json 2>/dev/null; then printf '%s\\n' {json} > {dp}/.deckhand/lock/info.json && touch {dp}/.deckhand/lock/heartbeat && echo acquired; ",
            id = sh_quote(&format!("\"id\":\"{id}\"")),
            dp = sh_quote(dp.trim_end_matches('/')),
            json = sh_quote(&json)
        ),
        None => String::new(),
    };
    format!(
        "umask 077\nmkdir -p {dp}/.deckhand || exit 1\n\
         if mkdir {dp}/.deckhand/lock 2>/dev/null; then if printf '%s\\n' {json} > {dp}/.deckhand/lock/info.json && touch {dp}/.deckhand/lock/heartbeat; then echo acquired; \
         else rm -rf {dp}/.deckhand/lock; echo 'cannot write the lock (is the disk full?); it was removed' >&2; exit 1; fi; \
         {takeover}else echo held; for i in 1 2 3 4 5 6 7 8 9 10; do [ -s {dp}/.deckhand/lock/info.json ] && break; sleep 0.1; done; \
         tr -d '\\n' < {dp}/.deckhand/lock/info.json 2>/dev/null; echo; fi\n",
        dp = sh_quote(dp.trim_end_matches('/')),
        json = sh_quote(&json)
    )
}

/// Refresh the lock's heartbeat and record the run's progress beside it, if the lock is still
/// ours (written to a temporary file and renamed, so a reader never sees half of it).
pub fn progress_script(dp: &str, id: &str, progress: &Progress) -> String {
    let json = serde_json::to_string(progress).unwrap_or_default();
    format!(
        "if grep -qF -- {id} {dp}/.deckhand/lock/info.json 2>/dev/null; then printf '%s\\n' {json} > {dp}/.deckhand/lock/.progress.tmp && mv -f {dp}/.deckhand/lock/.progress.tmp {dp}/.deckhand/lock/progress.json; touch {dp}/.deckhand/lock/heartbeat; fi\n",
        dp = sh_quote(dp.trim_end_matches('/')),
        id = sh_quote(&format!("\"id\":\"{id}\"")),
        json = sh_quote(&json)
    )
}

/// Release the lock, but only if it is still ours.
pub(crate) fn unlock_script(dp: &str, id: &str) -> String {
    format!(
        "if grep -qF -- {id} {dp}/.deckhand/lock/info.json 2>/dev/null; then rm -rf {dp}/.deckhand/lock; fi\n",
        dp = sh_quote(dp.trim_end_matches('/')),
        id = sh_quote(id)
    )
}

/// Remove a lock whoever holds it (the `unlock` command, after the operator confirmed).
pub(crate) fn force_unlock_script(dp: &str) -> String {
    format!(
        "rm -rf {dp}/.deckhand/lock\n",
        dp = sh_quote(dp.trim_end_matches('/'))
    )
}

pub(crate) fn history_script(dp: &str, entry: &HistoryEntry) -> String {
    let json = serde_json::to_string(entry).unwrap_or_default();
    format!(
        "umask 077\nmkdir -p {dp}/.deckhand && printf '%s\\n' {json} >> {dp}/.deckhand/history.jsonl\n",
        dp = sh_quote(dp.trim_end_matches('/')),
        json = sh_quote(&json)
    )
}

/// Make a fresh `releases/<release>` and link the shared files and dirs into it. Refuses to
/// touch the release `current` points at.
pub(crate) fn release_script(
    dp: &str,
    release: &str,
    shared_files: &[String],
    shared_dirs: &[String],
) -> String {
    let dp = dp.trim_end_matches('/');
    let rel = release_path(dp, release);
    let mut s = format!(
        "set -e\nmkdir -p {dpq}/releases {dpq}/shared\n\
         if [ \"$(readlink {dpq}/current 2>/dev/null)\" = {relname} ]; then echo 'refusing to rebuild the live release' >&2; exit 3; fi\n\
         rm -rf {relq}\nmkdir -p {relq}\n",
        dpq = sh_quote(dp),
        relname = sh_quote(&format!("releases/{release}")),
        relq = sh_quote(&rel),
    );
    for d in shared_dirs {
        let shared = sh_quote(&format!("{dp}/shared/{d}"));
        let target = sh_quote(&format!("{rel}/{d}"));
        s.push_str(&format!(
            "mkdir -p {shared}\nrm -rf {target}\nmkdir -p \"$(dirname {target})\"\nln -s {shared} {target}\necho linked shared dir {name}\n",
            name = sh_quote(d)
        ));
    }
    for f in shared_files {
        let shared = sh_quote(&format!("{dp}/shared/{f}"));
        let target = sh_quote(&format!("{rel}/{f}"));
        s.push_str(&format!(
            "mkdir -p \"$(dirname {shared})\"\n[ -e {shared} ] || {{ : > {shared}; echo created empty shared file {name}; }}\n\
             rm -f {target}\nmkdir -p \"$(dirname {target})\"\nln -s {shared} {target}\necho linked shared file {name}\n",
            name = sh_quote(f)
        ));
    }
    s.push_str(&format!("echo release {} ready\n", sh_quote(release)));
    s
}

/// Point `current` at `releases/<release>` atomically (a new link renamed over the old one),
/// then print where it points now.
pub(crate) fn switch_script(dp: &str, release: &str, tmp_tag: &str) -> String {
    format!(
        "set -e\ncd {dp}\n[ -d {rel} ] || {{ echo 'release directory '{rel}' is missing' >&2; exit 3; }}\n\
         ln -sfn {rel} {tmp}\nmv -fT {tmp} current\nprintf 'current=%s\\n' \"$(readlink current)\"\n",
        dp = sh_quote(dp.trim_end_matches('/')),
        rel = sh_quote(&format!("releases/{release}")),
        tmp = sh_quote(&format!(".current.{tmp_tag}")),
    )
}

/// Remove a release directory this run created but never switched to.
pub(crate) fn remove_release_script(dp: &str, release: &str) -> String {
    format!(
        "if [ \"$(readlink {dpq}/current 2>/dev/null)\" != {relname} ]; then rm -rf {relq}; fi\n",
        dpq = sh_quote(dp.trim_end_matches('/')),
        relname = sh_quote(&format!("releases/{release}")),
        relq = sh_quote(&release_path(dp.trim_end_matches('/'), release)),
    )
}

/// Which releases cleanup deletes: all but the `keep` newest, and never the live, previous or
/// new one. `newest_first` is the directory listing by modification time.
pub(crate) fn cleanup_victims(
    newest_first: &[String],
    keep: usize,
    protect: &[Option<&str>],
) -> Vec<String> {
    let protected: Vec<&str> = protect.iter().flatten().copied().collect();
    newest_first
        .iter()
        .skip(keep)
        .filter(|r| !protected.contains(&r.as_str()))
        .filter(|r| valid_release(r))
        .cloned()
        .collect()
}

pub(crate) fn cleanup_script(dp: &str, victims: &[String]) -> String {
    let mut s = String::from("set -e\n");
    for v in victims {
        s.push_str(&format!(
            "rm -rf {}\necho removed old release {}\n",
            sh_quote(&release_path(dp.trim_end_matches('/'), v)),
            sh_quote(v)
        ));
    }
    if victims.is_empty() {
        s.push_str("echo nothing to remove\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(release: &str, from: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            from: from.map(String::from),
            ..HistoryEntry::new("x", "deploy", release, "a", "t", "ok")
        }
    }

    #[test]
    fn old_history_lines_still_read_and_new_ones_carry_the_run() {
        let old = r#"{"id":"d0","kind":"deploy","release":"v1","from":null,"who":"ann","at":"t","result":"ok"}"#;
        let e: HistoryEntry = serde_json::from_str(old).expect("an old line reads");
        assert_eq!(e.host, None);
        assert!(e.failed.is_empty());
        // A line with only the old fields is written as it was.
        assert_eq!(serde_json::to_string(&e).unwrap(), old);
        let new = HistoryEntry {
            host: Some("jump-1".into()),
            run: Some("promote".into()),
            failed: vec!["web-3".into()],
            ..HistoryEntry::new("d1", "finished", "v2", "ann", "t", "rolled back")
        };
        let back: HistoryEntry =
            serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn the_state_answer_carries_the_holders_progress() {
        let p = Progress {
            id: "d1".into(),
            kind: "deploy".into(),
            state: "deploying".into(),
            batch: Some(2),
            batches: 3,
            done: 1,
            total: 5,
            nodes: vec![NodeProgress {
                node: "web-2".into(),
                state: "updating".into(),
                phase: Some("switch".into()),
            }],
            at_ms: 1,
        };
        let out = format!(
            "current=releases/v1\nlock={{\"id\":\"d1\",\"who\":\"ann\",\"host\":\"j\",\"pid\":1,\"at\":\"t\",\"env\":\"p\",\"release\":\"v2\"}}\nprogress={}\nend=deckhand-state\n",
            serde_json::to_string(&p).unwrap()
        );
        let s = parse_state(&out).expect("whole");
        assert_eq!(s.progress.as_ref(), Some(&p));
        assert_eq!(
            p.describe(),
            "deploying · batch 2/3 · web-2 switch · 1/5 done"
        );
        assert!(progress_script("/srv/a b", "d1", &p)
            .contains("'/srv/a b'/.deckhand/lock/progress.json"));
    }

    #[test]
    fn state_parsing_reads_every_field() {
        let out = "current=releases/v1.1\nlock={\"id\":\"d1\",\"who\":\"ann\",\"host\":\"jump\",\"pid\":7,\"at\":\"now\",\"env\":\"prod\",\"release\":\"v2\"}\n\
                   history={\"id\":\"d0\",\"kind\":\"deploy\",\"release\":\"v1.1\",\"from\":\"v1.0\",\"who\":\"ann\",\"at\":\"t\",\"result\":\"ok\"}\n\
                   release=v1.1\nrelease=v1.0\nrelease=../evil\nfree_kb=1234\nend=deckhand-state\n";
        let s = parse_state(out).expect("a whole answer");
        assert_eq!(s.current.as_deref(), Some("v1.1"));
        assert_eq!(s.lock.as_ref().map(|l| l.who.as_str()), Some("ann"));
        assert_eq!(s.releases, vec!["v1.1", "v1.0"]);
        assert_eq!(s.free_kb, Some(1234));
        assert_eq!(s.previous().as_deref(), Some("v1.0"));
    }

    #[test]
    fn a_state_answer_cut_short_is_an_error_never_an_empty_node() {
        assert!(parse_state("").is_err());
        // Lost after the release lines: the lock and the rest never arrived.
        let cut = "current=releases/v1.1\nrelease=v1.1\n";
        assert_eq!(parse_state(cut).unwrap_err(), "no end marker after 2 lines");
        // A missing deploy path is a whole answer: a fresh node.
        let fresh = parse_state("missing=1\nend=deckhand-state\n").expect("whole");
        assert_eq!(fresh, NodeSnapshot::default());
    }

    #[test]
    fn the_state_script_ends_every_answer_with_its_marker() {
        let s = state_script("/srv/app");
        assert_eq!(s.matches(STATE_END).count(), 2, "{s}");
        assert!(s.trim_end().ends_with(STATE_END));
    }

    #[test]
    fn previous_falls_back_to_next_newest_directory() {
        let s = NodeSnapshot {
            current: Some("b".into()),
            releases: vec!["c".into(), "b".into(), "a".into()],
            history: vec![h("c", Some("b"))],
            ..Default::default()
        };
        assert_eq!(s.previous().as_deref(), Some("a"));
    }

    #[test]
    fn cleanup_never_removes_live_previous_or_new() {
        let list: Vec<String> = ["v6", "v5", "v4", "v3", "v2", "v1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // keep 2 newest (v6, v5); live is v1 (an old rollback target), previous v3.
        let v = cleanup_victims(&list, 2, &[Some("v1"), Some("v3"), Some("v6")]);
        assert_eq!(v, vec!["v4", "v2"]);
    }

    #[test]
    fn a_lock_is_stale_from_stale_after_on() {
        let after = Duration::from_secs(60);
        assert!(!lock_is_stale(Some(59), after));
        assert!(lock_is_stale(Some(60), after));
        assert!(!lock_is_stale(None, after));
        assert_eq!(
            lock_age_note(Some(75), after),
            " — STALE: no heartbeat for 75s"
        );
        assert_eq!(lock_age_note(Some(3), after), " — alive: heartbeat 3s ago");
        assert_eq!(lock_age_note(None, after), "");
    }

    #[test]
    fn link_targets_name_their_release() {
        assert_eq!(release_of_link("releases/v1.0").as_deref(), Some("v1.0"));
        assert_eq!(
            release_of_link("/srv/app/releases/v2/").as_deref(),
            Some("v2")
        );
        assert_eq!(release_of_link(""), None);
    }
}
