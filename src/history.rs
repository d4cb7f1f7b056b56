//! An environment's history: its deployments and rollbacks, newest first, as the nodes
//! themselves record them (`.deckhand/history.jsonl` on each node), so every operator sees the
//! same story from whichever machine they ran. Each run's lines (one per node and turn, and one
//! `finished` line per node at the end) are joined by deployment id into one [`Deployment`];
//! where this machine has the run's journal, it is named, so the console can replay it.
//!
//! [`aggregate`] is pure and unit-tested; [`read`] reads the nodes (through
//! [`crate::engine::status`]) and the journal directory. Nothing here changes a node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::remote::HistoryEntry;
use crate::engine::status::NodeStatus;

/// One run in an environment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The deployment id (also the journal's).
    pub id: String,
    /// `deploy`, `rollback`, `resume` or `promote`.
    pub kind: String,
    /// The release it deployed, or the release a rollback went back to.
    pub release: String,
    /// The release live before (a rollback: the release it left).
    pub from: Option<String>,
    pub who: String,
    /// The host it was run from, when recorded.
    pub host: Option<String>,
    /// When it started and when its last line was written (RFC 3339).
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_s: Option<u64>,
    /// `deployed`, `rolled back`, `halted`, `aborted`, `deployed with failed nodes`, `failed`;
    /// `running` while its lock is held; for runs older than the `finished` line, what the
    /// nodes' lines say.
    pub outcome: String,
    /// Nodes that failed in it.
    pub failed_nodes: Vec<String>,
    /// Nodes that recorded it.
    pub nodes: Vec<String>,
    /// The release passed the post-deploy checklist on every node it landed on.
    pub verified: bool,
    /// This machine's journal of the run, if it has one (`enter` replays it).
    pub journal: Option<PathBuf>,
}

impl Deployment {
    /// `v1.0 → v1.1`, or the release alone.
    pub fn releases(&self, arrow: &str) -> String {
        match &self.from {
            Some(f) if f != &self.release => format!("{f} {arrow} {}", self.release),
            _ => self.release.clone(),
        }
    }

    /// `ann@jump-1`, or who alone.
    pub fn by(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{h}", self.who),
            None => self.who.clone(),
        }
    }

    /// How long it took: `42s`, `3m05s`, `<1s`; `-` while unknown or running.
    pub fn took(&self) -> String {
        match self.duration_s {
            Some(0) => "<1s".into(),
            Some(s) => crate::util::format_duration(std::time::Duration::from_secs(s)),
            None => "-".into(),
        }
    }

    /// `2026-12-02 14:03`, in UTC.
    pub fn when(&self) -> String {
        self.started
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|| "?".into())
    }
}

/// The time a deployment id was made (`20260101T120000Z-1a2b`), as RFC 3339.
fn id_time(id: &str) -> Option<String> {
    let stamp = id.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().to_rfc3339())
}

fn seconds_between(a: &str, b: &str) -> Option<u64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_seconds().max(0) as u64)
}

/// The most common value, first seen first on a tie.
fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|c| c.0 == v) {
            Some(c) => c.1 += 1,
            None => counts.push((v, 1)),
        }
    }
    let best = counts.iter().map(|c| c.1).max()?;
    counts
        .into_iter()
        .find(|c| c.1 == best)
        .map(|c| c.0.to_string())
}

/// Join the nodes' history lines of environment `env` into runs, newest first. `running` are
/// the deployment ids whose lock is held now. Lines of another environment are left out; lines
/// without an environment (older ones) are kept.
pub fn aggregate(
    env: &str,
    per_node: &[(String, Vec<HistoryEntry>)],
    running: &[String],
) -> Vec<Deployment> {
    let mut by_id: BTreeMap<&str, Vec<(&str, &HistoryEntry)>> = BTreeMap::new();
    for (node, lines) in per_node {
        for l in lines {
            if l.env.as_deref().is_some_and(|e| e != env) {
                continue;
            }
            by_id.entry(l.id.as_str()).or_default().push((node, l));
        }
    }
    let mut out: Vec<Deployment> = by_id
        .into_iter()
        .map(|(id, lines)| one(id, &lines, running.iter().any(|r| r == id)))
        .collect();
    out.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.id.cmp(&a.id)));
    out
}

fn one(id: &str, lines: &[(&str, &HistoryEntry)], running: bool) -> Deployment {
    let of = |kind: &str| -> Vec<&(&str, &HistoryEntry)> {
        lines.iter().filter(|(_, l)| l.kind == kind).collect()
    };
    let finished = of("finished").first().map(|(_, l)| (*l).clone());
    let deploys = of("deploy");
    let rollbacks = of("rollback");
    let verified = of("verified");
    let first = lines.iter().map(|(_, l)| *l).min_by(|a, b| a.at.cmp(&b.at));
    let kind = finished
        .as_ref()
        .and_then(|f| f.run.clone())
        .or_else(|| lines.iter().find_map(|(_, l)| l.run.clone()))
        .unwrap_or_else(|| {
            if deploys.is_empty() && !rollbacks.is_empty() {
                "rollback".into()
            } else {
                "deploy".into()
            }
        });
    let is_rollback = kind == "rollback";
    // A rollback goes *to* the rollback lines' release, *from* the one it left.
    let main: &Vec<&(&str, &HistoryEntry)> = if is_rollback { &rollbacks } else { &deploys };
    let release = most_common(main.iter().map(|(_, l)| l.release.as_str()))
        .or_else(|| finished.as_ref().map(|f| f.release.clone()))
        .unwrap_or_default();
    let from = most_common(main.iter().filter_map(|(_, l)| l.from.as_deref()));
    let mut failed_nodes: Vec<String> = match &finished {
        Some(f) => f.failed.clone(),
        None => lines
            .iter()
            .filter(|(_, l)| (l.kind == "deploy" || l.kind == "rollback") && l.result != "ok")
            .map(|(n, _)| n.to_string())
            .collect(),
    };
    failed_nodes.sort();
    failed_nodes.dedup();
    let outcome = match &finished {
        Some(f) => f.result.clone(),
        None if running => "running".into(),
        None if !rollbacks.is_empty() => {
            if rollbacks.iter().all(|(_, l)| l.result == "ok") {
                "rolled back".into()
            } else {
                "rollback failed".into()
            }
        }
        None if deploys.iter().any(|(_, l)| l.result != "ok") => "failed".into(),
        None if deploys.is_empty() => "verified".into(),
        None => "deployed".into(),
    };
    let started = finished
        .as_ref()
        .and_then(|f| f.started.clone())
        .or_else(|| id_time(id))
        .or_else(|| first.map(|l| l.at.clone()));
    let ended = lines.iter().map(|(_, l)| l.at.clone()).max();
    let duration_s = match (&started, &ended) {
        (Some(s), Some(e)) if !running => seconds_between(s, e),
        _ => None,
    };
    let mut nodes: Vec<String> = lines
        .iter()
        .filter(|(_, l)| l.kind != "finished")
        .map(|(n, _)| n.to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    let landed = deploys.iter().filter(|(_, l)| l.result == "ok").count();
    let verified = !verified.is_empty()
        && verified.iter().all(|(_, l)| l.result == "ok")
        && verified.len() >= landed;
    Deployment {
        id: id.to_string(),
        kind,
        release,
        from,
        who: first.map(|l| l.who.clone()).unwrap_or_default(),
        host: lines.iter().find_map(|(_, l)| l.host.clone()),
        started,
        ended,
        duration_s,
        outcome,
        failed_nodes,
        nodes,
        verified,
        journal: None,
    }
}

/// Name each run's journal where this machine has it (`{app}-{env}-{id}.jsonl` in `dir`).
pub fn attach_journals(list: &mut [Deployment], dir: &Path, app: &str, env: &str) {
    for d in list {
        let p = dir.join(crate::journal::journal_name(app, env, &d.id));
        if p.is_file() {
            d.journal = Some(p);
        }
    }
}

/// What reading an environment's history found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub deployments: Vec<Deployment>,
    /// Nodes that could not be read, and why: their lines are missing.
    pub unreachable: Vec<(String, String)>,
}

/// The history of `env` from its nodes' statuses (read by the caller), joined with the journals
/// in `journal_dir`.
pub fn from_statuses(app: &str, env: &str, statuses: &[NodeStatus], journal_dir: &Path) -> History {
    let per_node: Vec<(String, Vec<HistoryEntry>)> = statuses
        .iter()
        .filter(|s| s.reachable)
        .map(|s| (s.node.clone(), s.history.clone()))
        .collect();
    let running: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.lock.as_ref().map(|l| l.id.clone()))
        .collect();
    let mut deployments = aggregate(env, &per_node, &running);
    attach_journals(&mut deployments, journal_dir, app, env);
    History {
        deployments,
        unreachable: statuses
            .iter()
            .filter(|s| !s.reachable)
            .map(|s| {
                (
                    s.node.clone(),
                    s.error.clone().unwrap_or_else(|| "no answer".into()),
                )
            })
            .collect(),
    }
}

/// Read the history of an environment: every node (concurrently), then the journals.
pub async fn read(
    inv: &crate::inventory::Inventory,
    env: &crate::inventory::Environment,
) -> History {
    let statuses = crate::engine::status::read_status(inv, &env.nodes).await;
    from_statuses(
        &inv.app.name,
        &env.name,
        &statuses,
        &crate::journal::default_journal_dir(),
    )
}

/// The history as a table for people (`deckhand history`).
pub fn render_text(h: &History, limit: Option<usize>) -> String {
    let mut out = format!(
        "{:<17} {:<9} {:<22} {:<26} {:<20} {:>8}  FAILED\n",
        "WHEN (UTC)", "KIND", "RELEASE", "OUTCOME", "BY", "DURATION"
    );
    let shown = h.deployments.iter().take(limit.unwrap_or(usize::MAX));
    for d in shown {
        let outcome = if d.verified {
            format!("{} (verified)", d.outcome)
        } else {
            d.outcome.clone()
        };
        let failed = if d.failed_nodes.is_empty() {
            "-".to_string()
        } else {
            d.failed_nodes.join(", ")
        };
        out.push_str(&format!(
            "{:<17} {:<9} {:<22} {:<26} {:<20} {:>8}  {failed}\n",
            d.when(),
            d.kind,
            d.releases("->"),
            outcome,
            d.by(),
            d.took(),
        ));
    }
    if h.deployments.is_empty() {
        out.push_str("(no deployment recorded on these nodes yet)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        id: &str,
        kind: &str,
        release: &str,
        from: Option<&str>,
        at: &str,
        result: &str,
    ) -> HistoryEntry {
        HistoryEntry {
            from: from.map(String::from),
            env: Some("prod".into()),
            host: Some("jump-1".into()),
            ..HistoryEntry::new(id, kind, release, "ann", at, result)
        }
    }

    fn finished(
        id: &str,
        run: &str,
        release: &str,
        at: &str,
        outcome: &str,
        failed: &[&str],
    ) -> HistoryEntry {
        HistoryEntry {
            run: Some(run.into()),
            started: id_time(id),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            ..line(id, "finished", release, None, at, outcome)
        }
    }

    const D1: &str = "20260101T100000Z-0001";
    const D2: &str = "20260101T110000Z-0002";
    const R3: &str = "20260101T120000Z-0003";

    fn fleet() -> Vec<(String, Vec<HistoryEntry>)> {
        let at = |h: u32, s: u32| format!("2026-01-01T{h:02}:00:{s:02}+00:00");
        let mut nodes = Vec::new();
        for (i, n) in ["web-1", "web-2"].iter().enumerate() {
            let mut l = vec![
                line(
                    D1,
                    "deploy",
                    "v1.1",
                    Some("v1.0"),
                    &at(10, 10 + i as u32),
                    "ok",
                ),
                line(D1, "verified", "v1.1", None, &at(10, 30), "ok"),
                finished(D1, "deploy", "v1.1", &at(10, 31), "deployed", &[]),
            ];
            // D2: web-1 switched to v1.2, web-2 failed; both rolled back.
            if i == 0 {
                l.push(line(D2, "deploy", "v1.2", Some("v1.1"), &at(11, 5), "ok"));
                l.push(line(
                    D2,
                    "rollback",
                    "v1.1",
                    Some("v1.2"),
                    &at(11, 20),
                    "ok",
                ));
            } else {
                l.push(line(
                    D2,
                    "deploy",
                    "v1.2",
                    Some("v1.1"),
                    &at(11, 8),
                    "failed",
                ));
            }
            l.push(finished(
                D2,
                "deploy",
                "v1.2",
                &at(11, 25),
                "rolled back",
                &["web-2"],
            ));
            // R3: a rollback command to v1.0.
            l.push(line(R3, "rollback", "v1.0", Some("v1.1"), &at(12, 9), "ok"));
            l.push(HistoryEntry {
                run: Some("rollback".into()),
                ..finished(R3, "rollback", "previous", &at(12, 10), "rolled back", &[])
            });
            nodes.push((n.to_string(), l));
        }
        nodes
    }

    #[test]
    fn runs_are_joined_across_nodes_newest_first() {
        let h = aggregate("prod", &fleet(), &[]);
        let ids: Vec<&str> = h.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec![R3, D2, D1]);
        let r = &h[0];
        assert_eq!((r.kind.as_str(), r.release.as_str()), ("rollback", "v1.0"));
        assert_eq!(r.from.as_deref(), Some("v1.1"));
        assert_eq!(r.outcome, "rolled back");
        let d2 = &h[1];
        assert_eq!(d2.outcome, "rolled back");
        assert_eq!(d2.failed_nodes, vec!["web-2"]);
        assert_eq!(d2.releases("→"), "v1.1 → v1.2");
        assert_eq!(d2.duration_s, Some(25));
        assert_eq!(d2.by(), "ann@jump-1");
        let d1 = &h[2];
        assert_eq!(d1.outcome, "deployed");
        assert!(d1.verified);
        assert_eq!(d1.nodes, vec!["web-1", "web-2"]);
        assert_eq!(d1.when(), "2026-01-01 10:00");
    }

    #[test]
    fn old_lines_without_a_finished_line_still_tell_the_outcome() {
        let old = |id: &str, kind: &str, rel: &str, result: &str| {
            HistoryEntry::new(id, kind, rel, "bob", "2025-06-01T10:00:00+00:00", result)
        };
        let nodes = vec![
            (
                "a".to_string(),
                vec![
                    old(D1, "deploy", "v2", "ok"),
                    old(D1, "rollback", "v1", "ok"),
                ],
            ),
            (
                "b".to_string(),
                vec![
                    old(D1, "deploy", "v2", "failed"),
                    old(D2, "deploy", "v3", "ok"),
                ],
            ),
        ];
        let h = aggregate("prod", &nodes, &[D2.to_string()]);
        assert_eq!(h[0].outcome, "running", "its lock is held");
        assert_eq!(h[0].duration_s, None);
        assert_eq!(h[1].outcome, "rolled back");
        assert_eq!(h[1].failed_nodes, vec!["b"]);
        assert_eq!(h[1].host, None);
    }

    #[test]
    fn another_environments_lines_are_left_out() {
        let mut other = line(D1, "deploy", "v9", None, "2026-01-01T10:00:00+00:00", "ok");
        other.env = Some("staging".into());
        let h = aggregate("prod", &[("web-1".into(), vec![other])], &[]);
        assert!(h.is_empty());
    }

    #[test]
    fn the_table_names_kind_release_outcome_and_failed_nodes() {
        let h = History {
            deployments: aggregate("prod", &fleet(), &[]),
            unreachable: vec![],
        };
        let t = render_text(&h, Some(2));
        assert_eq!(t.lines().count(), 3, "{t}");
        assert!(t.contains("v1.1 -> v1.2"), "{t}");
        assert!(
            t.lines().nth(2).is_some_and(|l| l.ends_with("web-2")),
            "{t}"
        );
    }
}
