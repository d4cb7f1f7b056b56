//! The home screen: where an operator works from. Every environment of the inventory with its
//! strategy, node count, live releases (mixed when the nodes disagree), its lock (free, how far
//! the holder's run is, or stale) and its last deployment; the selected environment's nodes as
//! they answered (live and previous release, the balancer's answer, the releases a rollback can
//! reach, or why a node cannot be read); and its history, newest first, from the nodes' own
//! lines. From here `d` deploys, `R` rolls back, `P` promotes, `u` removes a stale lock, `w`
//! watches a run, `enter` replays a run this machine has a journal of.
//!
//! [`Home`] is plain data changed only by [`Home::apply`] (fleet answers) and [`handle_key`]
//! (screen state); [`draw`] draws from `&Home`. What an action needs (a deployment, a rollback,
//! a watch) is handed back as a [`HomeExit`]: the caller runs it through the same engine,
//! confirmations and journal as the command line, and comes back. Nothing here reads the
//! network: [`show`] takes the answers of [`crate::fleet::spawn_read`] from a channel.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{Event as TermEvent, EventStream, KeyCode, KeyEventKind};
use futures::StreamExt;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use crate::engine::remote::lock_is_stale;
use crate::engine::status::{NodeStatus, Reader};
use crate::fleet::FleetNews;
use crate::history::Deployment;
use crate::inventory::Inventory;

use super::keys::Key;
use super::theme::{Glyphs, Theme};

/// What the operator chose to do from home; the caller carries it out and comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeExit {
    Quit,
    Deploy {
        env: String,
        release: String,
    },
    Rollback {
        env: String,
    },
    Promote {
        from: String,
        to: String,
    },
    /// Remove the stale lock of this deployment (and only while it is still stale).
    Unlock {
        env: String,
        deployment: String,
    },
    Watch {
        env: String,
    },
    Replay {
        journal: PathBuf,
    },
}

/// One environment as the inventory declares it.
#[derive(Debug, Clone)]
pub struct EnvRow {
    pub name: String,
    pub strategy: String,
    pub nodes: Vec<String>,
    pub protected: bool,
    /// The environment whose verified release may come here (`requires`).
    pub requires: Option<String>,
    pub balancer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pane {
    Envs,
    Nodes,
    History,
}

/// A dialog over the home screen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HomeDialog {
    /// `d`: which release, with completion from what the nodes know.
    Release {
        env: String,
        typed: String,
        pick: usize,
    },
    /// The plan, as `deckhand plan` prints it, before the deployment starts.
    Plan {
        env: String,
        release: String,
        lines: Vec<String>,
        top: usize,
    },
    /// Confirm an action (rollback, promote, unlock); a protected environment's name typed.
    Confirm {
        exit: HomeExit,
        title: String,
        lines: Vec<String>,
        typed_needed: Option<String>,
        typed: String,
    },
}

/// The home screen's state.
pub struct Home {
    pub app: String,
    pub inventory: PathBuf,
    pub envs: Vec<EnvRow>,
    /// Every node as it last answered.
    nodes: HashMap<String, NodeStatus>,
    /// Each environment's balancers, as they last answered.
    rotation: HashMap<String, Result<BTreeMap<String, bool>, String>>,
    /// Each environment's history, from its nodes' lines (recomputed as they answer).
    history: HashMap<String, Vec<Deployment>>,
    journal_dir: PathBuf,
    /// Answers so far in this read, and how many are expected.
    answered: usize,
    expected: usize,
    reading: bool,
    pub(crate) selected_env: usize,
    pub(crate) selected_node: usize,
    pub(crate) selected_history: usize,
    pub(crate) pane: Pane,
    pub(crate) dialog: Option<HomeDialog>,
    flash: Option<(crate::event::Level, String, i64)>,
    pub(crate) now_ms: i64,
    pub(crate) theme: Theme,
    pub(crate) glyphs: Glyphs,
    /// The plan text of a release, from the inventory (no node is contacted).
    plan_for: Option<std::sync::Arc<Inventory>>,
    /// Each node's address from the inventory (shown before it answered).
    hosts: HashMap<String, String>,
}

/// What a key asked the loop for, besides leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeEffect {
    None,
    Refresh,
    Exit(HomeExit),
}

impl Home {
    pub fn new(inv: &Inventory, theme: Theme, glyphs: Glyphs) -> Home {
        let envs: Vec<EnvRow> = inv
            .environments
            .iter()
            .map(|e| EnvRow {
                name: e.name.clone(),
                strategy: e.strategy.word().into(),
                nodes: e.nodes.clone(),
                protected: e.protected,
                requires: e.requires.clone(),
                balancer: !e.load_balancers.is_empty(),
            })
            .collect();
        let mut expected: Vec<&String> = envs.iter().flat_map(|e| e.nodes.iter()).collect();
        expected.sort();
        expected.dedup();
        Home {
            app: inv.app.name.clone(),
            inventory: inv.file.clone(),
            expected: expected.len(),
            envs,
            nodes: HashMap::new(),
            rotation: HashMap::new(),
            history: HashMap::new(),
            journal_dir: crate::journal::default_journal_dir(),
            answered: 0,
            reading: true,
            selected_env: 0,
            selected_node: 0,
            selected_history: 0,
            pane: Pane::Envs,
            dialog: None,
            flash: None,
            now_ms: 0,
            theme,
            glyphs,
            plan_for: Some(std::sync::Arc::new(inv.clone())),
            hosts: inv
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.host.clone()))
                .collect(),
        }
    }

    /// The home screen for `inv` with the console's options (theme, glyphs).
    pub fn with_options(inv: &Inventory, opts: &super::UiOptions) -> anyhow::Result<Home> {
        let (theme, glyphs) = opts.resolve()?;
        Ok(Home::new(inv, theme, glyphs))
    }

    /// Where this machine's journals are (for `enter` on a history entry).
    pub fn set_journal_dir(&mut self, dir: PathBuf) {
        self.journal_dir = dir;
    }

    /// A new read started: answers come again (what was read stays shown meanwhile).
    pub fn refreshing(&mut self) {
        self.answered = 0;
        self.reading = true;
    }

    /// Fold one fleet answer in.
    pub fn apply(&mut self, news: FleetNews) {
        match news {
            FleetNews::Node(st) => {
                self.answered += 1;
                let name = st.node.clone();
                self.nodes.insert(name.clone(), *st);
                let envs: Vec<String> = self
                    .envs
                    .iter()
                    .filter(|e| e.nodes.contains(&name))
                    .map(|e| e.name.clone())
                    .collect();
                for e in envs {
                    self.recompute_history(&e);
                }
            }
            FleetNews::Rotation { env, result } => {
                self.rotation.insert(env, result);
            }
            FleetNews::Done => self.reading = false,
        }
    }

    fn recompute_history(&mut self, env: &str) {
        let Some(row) = self.envs.iter().find(|e| e.name == env) else {
            return;
        };
        let statuses: Vec<NodeStatus> = row
            .nodes
            .iter()
            .filter_map(|n| self.nodes.get(n).cloned())
            .collect();
        let h = crate::history::from_statuses(&self.app, env, &statuses, &self.journal_dir);
        self.history.insert(env.to_string(), h.deployments);
    }

    /// Show a line on the flash line for six seconds.
    pub fn flash(&mut self, level: crate::event::Level, text: impl Into<String>) {
        self.flash = Some((level, text.into(), self.now_ms + super::app::FLASH_MS));
    }

    pub fn set_clock(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    pub fn env(&self) -> Option<&EnvRow> {
        self.envs.get(self.selected_env)
    }

    pub fn select_env(&mut self, i: usize) {
        self.selected_env = i.min(self.envs.len().saturating_sub(1));
        self.selected_node = 0;
        self.selected_history = 0;
    }

    /// The environment's nodes as they answered (None: not answered yet), in plan order.
    fn env_nodes<'a>(
        &'a self,
        e: &'a EnvRow,
    ) -> impl Iterator<Item = (&'a str, Option<&'a NodeStatus>)> {
        e.nodes.iter().map(|n| (n.as_str(), self.nodes.get(n)))
    }

    /// `v1.1`, `v1.1 ×3 · v1.0 ×1` (mixed), or None before any node answered.
    pub fn live(&self, e: &EnvRow) -> Option<(String, bool)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        let mut any = false;
        for (_, st) in self.env_nodes(e) {
            let Some(st) = st.filter(|s| s.reachable) else {
                continue;
            };
            any = true;
            let r = st.live_release.clone().unwrap_or_else(|| "none".into());
            match counts.iter_mut().find(|c| c.0 == r) {
                Some(c) => c.1 += 1,
                None => counts.push((r, 1)),
            }
        }
        if !any {
            return None;
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        if counts.len() == 1 {
            return Some((counts[0].0.clone(), false));
        }
        let text = counts
            .iter()
            .map(|(r, n)| format!("{r} ×{n}"))
            .collect::<Vec<_>>()
            .join(&format!(" {} ", self.glyphs.dot));
        Some((text, true))
    }

    /// The lock in words: `free`, `deploying v1.2 · ann@jump-1 · batch 2/3 · heartbeat 4s`,
    /// `STALE 12 min · ann@jump-1`; and whether it is stale.
    /// The deployment that holds the environment's lock, as the first node that answered says.
    fn lock_holder(&self, e: &EnvRow) -> Option<String> {
        self.env_nodes(e)
            .filter_map(|(_, st)| st.filter(|s| s.reachable))
            .find_map(|s| s.lock.as_ref().map(|l| l.id.clone()))
    }

    pub fn lock(&self, e: &EnvRow) -> Option<(String, bool)> {
        let mut answered = false;
        for (_, st) in self.env_nodes(e) {
            let Some(st) = st.filter(|s| s.reachable) else {
                continue;
            };
            answered = true;
            if !st.locked {
                continue;
            }
            let Some(l) = &st.lock else {
                return Some(("held (holder unreadable)".into(), false));
            };
            let stale = lock_is_stale(st.lock_age_s, crate::engine::DEFAULT_STALE_AFTER);
            let who = format!("{}@{}", l.who, l.host);
            if stale {
                let mins = st.lock_age_s.unwrap_or(0) / 60;
                return Some((
                    format!(
                        "STALE {mins} min {} {who} {} {}",
                        self.glyphs.dot, self.glyphs.dot, l.release
                    ),
                    true,
                ));
            }
            let mut parts = vec![format!("deploying {}", l.release), who];
            if let Some(p) = &st.progress {
                if let Some(b) = p.batch {
                    parts.push(format!("batch {b}/{}", p.batches));
                }
                if p.state != "deploying" {
                    parts.push(p.state.clone());
                }
                for n in &p.nodes {
                    parts.push(match &n.phase {
                        Some(ph) => format!("{} {ph}", n.node),
                        None => format!("{} {}", n.node, n.state),
                    });
                }
            }
            if let Some(a) = st.lock_age_s {
                parts.push(format!("heartbeat {a}s"));
            }
            return Some((parts.join(&format!(" {} ", self.glyphs.dot)), false));
        }
        answered.then(|| ("free".into(), false))
    }

    /// The environment's history, newest first (empty before its nodes answered).
    pub fn history(&self, env: &str) -> &[Deployment] {
        self.history.get(env).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// `3h ago`, from an RFC 3339 time.
    fn ago(&self, at: Option<&str>) -> String {
        let Some(t) = at.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
            return "?".into();
        };
        let s = ((self.now_ms - t.timestamp_millis()) / 1000).max(0);
        match s {
            0..=59 => format!("{s}s ago"),
            60..=3599 => format!("{}m ago", s / 60),
            3600..=172_799 => format!("{}h ago", s / 3600),
            _ => format!("{}d ago", s / 86_400),
        }
    }

    /// Releases to offer at the prompt: on this environment's nodes first, then what any node
    /// (staging too) has, newest first, each once.
    pub fn known_releases(&self, env: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let first: Vec<&String> = self
            .envs
            .iter()
            .find(|e| e.name == env)
            .map(|e| e.nodes.iter().collect())
            .unwrap_or_default();
        let mut names: Vec<&String> = first.clone();
        let mut rest: Vec<&String> = self.nodes.keys().filter(|n| !first.contains(n)).collect();
        rest.sort();
        names.extend(rest);
        for n in names {
            if let Some(st) = self.nodes.get(n) {
                for r in &st.releases {
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
    }

    fn matches(&self, env: &str, typed: &str) -> Vec<String> {
        self.known_releases(env)
            .into_iter()
            .filter(|r| r.starts_with(typed))
            .collect()
    }

    /// The rollback dialog's lines: each node and the release it goes back to.
    fn rollback_dialog(&self, e: &EnvRow) -> HomeDialog {
        let statuses: Vec<NodeStatus> = e
            .nodes
            .iter()
            .filter_map(|n| self.nodes.get(n).cloned())
            .filter(|s| s.reachable)
            .collect();
        let mut lines = vec!["Each node goes back to its previous release:".to_string()];
        for r in crate::engine::status::rollback_preview(&statuses, None) {
            lines.push(format!(
                "  {:<14} {} {} {}",
                r.node, r.from, self.glyphs.arrow, r.to
            ));
        }
        for n in &e.nodes {
            match self.nodes.get(n) {
                Some(s) if s.reachable => {}
                Some(s) => lines.push(format!(
                    "  {n:<14} cannot be read: {}",
                    s.error.as_deref().unwrap_or("no answer")
                )),
                None => lines.push(format!("  {n:<14} not read yet")),
            }
        }
        if statuses.len() < e.nodes.len() {
            lines.push(
                "The rollback reads every node first and changes nothing unless all answer.".into(),
            );
        }
        HomeDialog::Confirm {
            exit: HomeExit::Rollback {
                env: e.name.clone(),
            },
            title: format!("Roll back {} in {}?", self.app, e.name),
            lines,
            typed_needed: e.protected.then(|| e.name.clone()),
            typed: String::new(),
        }
    }

    fn plan_lines(&self, env: &str, release: &str) -> Result<Vec<String>, String> {
        let inv = self.plan_for.as_ref().ok_or("no inventory")?;
        let p = crate::plan::build(inv, env, release).map_err(|e| e.to_string())?;
        Ok(crate::plan::render_text(&p, inv)
            .lines()
            .map(String::from)
            .collect())
    }
}

// ------------------------------------------------------------------------------------ keys

/// The home screen's keys: the handler, the footer and the help line read this one table.
pub(crate) struct HomeKey {
    pub keys: &'static [char],
    pub shown: &'static str,
    pub word: &'static str,
}

pub(crate) static HOME_KEYS: &[HomeKey] = &[
    HomeKey {
        keys: &['d'],
        shown: "d",
        word: "deploy",
    },
    HomeKey {
        keys: &['R'],
        shown: "R",
        word: "roll back",
    },
    HomeKey {
        keys: &['P'],
        shown: "P",
        word: "promote",
    },
    HomeKey {
        keys: &['u'],
        shown: "u",
        word: "unlock",
    },
    HomeKey {
        keys: &['w'],
        shown: "w",
        word: "watch",
    },
    HomeKey {
        keys: &['r'],
        shown: "r",
        word: "refresh",
    },
    HomeKey {
        keys: &['\t'],
        shown: "tab",
        word: "pane",
    },
    HomeKey {
        keys: &['\n'],
        shown: "enter",
        word: "replay",
    },
    HomeKey {
        keys: &['t'],
        shown: "t",
        word: "theme",
    },
    HomeKey {
        keys: &['q'],
        shown: "q",
        word: "quit",
    },
];

/// Whether a home key applies now (the footer shows only those).
fn applies(home: &Home, word: &str) -> bool {
    let Some(e) = home.env() else {
        return matches!(word, "quit" | "refresh" | "theme");
    };
    let locked = home.lock(e).map(|l| l.0 != "free").unwrap_or(false);
    match word {
        "unlock" => home.lock(e).is_some_and(|(_, stale)| stale),
        "watch" => locked,
        "promote" => home
            .envs
            .iter()
            .any(|x| x.requires.as_deref() == Some(&e.name)),
        "replay" => {
            home.pane == Pane::History
                && home
                    .history(&e.name)
                    .get(home.selected_history)
                    .is_some_and(|d| d.journal.is_some())
        }
        "deploy" | "roll back" => !locked,
        _ => true,
    }
}

fn key_char(key: Key) -> Option<char> {
    match key.code {
        KeyCode::Char(c) if !key.ctrl => Some(c),
        KeyCode::Char('c') if key.ctrl => Some('q'),
        KeyCode::Tab => Some('\t'),
        KeyCode::Enter => Some('\n'),
        _ => None,
    }
}

/// Handle one key on the home screen.
pub fn handle_key(home: &mut Home, key: Key) -> HomeEffect {
    if home.dialog.is_some() {
        return dialog_key(home, key);
    }
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => {
            move_selection(home, -1);
            return HomeEffect::None;
        }
        KeyCode::Down | KeyCode::Char('j') => {
            move_selection(home, 1);
            return HomeEffect::None;
        }
        KeyCode::BackTab => {
            home.pane = match home.pane {
                Pane::Envs => Pane::History,
                Pane::Nodes => Pane::Envs,
                Pane::History => Pane::Nodes,
            };
            return HomeEffect::None;
        }
        _ => {}
    }
    let Some(c) = key_char(key) else {
        return HomeEffect::None;
    };
    let Some(k) = HOME_KEYS.iter().find(|k| k.keys.contains(&c)) else {
        return HomeEffect::None;
    };
    if !applies(home, k.word) {
        if let Some(e) = home.env() {
            let why = match k.word {
                "unlock" => format!("{} has no stale lock to remove", e.name),
                "watch" => format!("no deployment runs in {} now", e.name),
                "promote" => format!("no environment requires {}", e.name),
                "replay" => {
                    "select a history entry with a journal on this machine (tab to the history)"
                        .into()
                }
                _ => format!("{} is locked by a running deployment: w watches it", e.name),
            };
            home.flash(crate::event::Level::Warn, why);
        }
        return HomeEffect::None;
    }
    let env = home.env().cloned();
    match (k.word, env) {
        ("quit", _) => HomeEffect::Exit(HomeExit::Quit),
        ("refresh", _) => HomeEffect::Refresh,
        ("theme", _) => {
            home.theme = home.theme.next_builtin();
            let t = format!("theme: {}", home.theme.name);
            home.flash(crate::event::Level::Info, t);
            HomeEffect::None
        }
        ("pane", _) => {
            home.pane = match home.pane {
                Pane::Envs => Pane::Nodes,
                Pane::Nodes => Pane::History,
                Pane::History => Pane::Envs,
            };
            HomeEffect::None
        }
        ("deploy", Some(e)) => {
            home.dialog = Some(HomeDialog::Release {
                env: e.name,
                typed: String::new(),
                pick: 0,
            });
            HomeEffect::None
        }
        ("roll back", Some(e)) => {
            home.dialog = Some(home.rollback_dialog(&e));
            HomeEffect::None
        }
        ("promote", Some(e)) => {
            let Some(to) = home
                .envs
                .iter()
                .find(|x| x.requires.as_deref() == Some(&e.name))
                .cloned()
            else {
                return HomeEffect::None;
            };
            let statuses: Vec<NodeStatus> = e
                .nodes
                .iter()
                .filter_map(|n| home.nodes.get(n).cloned())
                .collect();
            let lines = match crate::engine::promote::promotable(&e.name, &statuses) {
                Ok(r) => vec![format!(
                    "{r} passed {}'s checklist on every node; it is deployed to {} next.",
                    e.name, to.name
                )],
                Err(why) => {
                    home.flash(
                        crate::event::Level::Warn,
                        format!("nothing to promote: {why}"),
                    );
                    return HomeEffect::None;
                }
            };
            home.dialog = Some(HomeDialog::Confirm {
                exit: HomeExit::Promote {
                    from: e.name.clone(),
                    to: to.name.clone(),
                },
                title: format!("Promote {} to {}?", e.name, to.name),
                lines,
                typed_needed: None,
                typed: String::new(),
            });
            HomeEffect::None
        }
        ("unlock", Some(e)) => {
            let (held, stale) = home.lock(&e).unwrap_or_default();
            let Some(deployment) = stale.then(|| home.lock_holder(&e)).flatten() else {
                home.flash(
                    crate::event::Level::Info,
                    format!(
                        "{} has no stale lock to remove: a live lock is never removed from here ({})",
                        e.name,
                        if held.is_empty() { "free".to_string() } else { held }
                    ),
                );
                return HomeEffect::None;
            };
            home.dialog = Some(HomeDialog::Confirm {
                exit: HomeExit::Unlock {
                    env: e.name.clone(),
                    deployment,
                },
                title: format!("Remove {}'s lock?", e.name),
                lines: vec![
                    format!("Held: {held}"),
                    "Only do this once you know that deployment's console is gone.".into(),
                ],
                typed_needed: None,
                typed: String::new(),
            });
            HomeEffect::None
        }
        ("watch", Some(e)) => HomeEffect::Exit(HomeExit::Watch { env: e.name }),
        ("replay", Some(e)) => match home
            .history(&e.name)
            .get(home.selected_history)
            .and_then(|d| d.journal.clone())
        {
            Some(journal) => HomeEffect::Exit(HomeExit::Replay { journal }),
            None => HomeEffect::None,
        },
        _ => HomeEffect::None,
    }
}

fn move_selection(home: &mut Home, d: i64) {
    let step = |i: usize, len: usize| -> usize {
        if len == 0 {
            0
        } else {
            (i as i64 + d).clamp(0, len as i64 - 1) as usize
        }
    };
    match home.pane {
        Pane::Envs => {
            let i = step(home.selected_env, home.envs.len());
            if i != home.selected_env {
                home.select_env(i);
            }
        }
        Pane::Nodes => {
            let len = home.env().map(|e| e.nodes.len()).unwrap_or(0);
            home.selected_node = step(home.selected_node, len);
        }
        Pane::History => {
            let len = home.env().map(|e| home.history(&e.name).len()).unwrap_or(0);
            home.selected_history = step(home.selected_history, len);
        }
    }
}

fn dialog_key(home: &mut Home, key: Key) -> HomeEffect {
    let Some(dialog) = home.dialog.take() else {
        return HomeEffect::None;
    };
    if key.code == KeyCode::Esc || (key.ctrl && key.code == KeyCode::Char('c')) {
        home.flash(crate::event::Level::Info, "nothing was changed");
        return HomeEffect::None;
    }
    match dialog {
        HomeDialog::Release {
            env,
            mut typed,
            mut pick,
        } => {
            let choices = home.matches(&env, &typed);
            match key.code {
                KeyCode::Char(c) if !key.ctrl => {
                    typed.push(c);
                    pick = 0;
                }
                KeyCode::Backspace => {
                    typed.pop();
                    pick = 0;
                }
                KeyCode::Up => pick = pick.saturating_sub(1),
                KeyCode::Down => pick = (pick + 1).min(choices.len().saturating_sub(1)),
                KeyCode::Tab => {
                    if let Some(c) = choices.get(pick) {
                        typed = c.clone();
                    }
                }
                KeyCode::Enter => {
                    let release = if typed.is_empty() {
                        choices.get(pick).cloned().unwrap_or_default()
                    } else {
                        typed.clone()
                    };
                    if !crate::util::valid_release(&release) {
                        home.flash(
                            crate::event::Level::Warn,
                            "a release name is letters, digits, '.', '_', '+', '-' (e.g. v1.2)",
                        );
                    } else {
                        match home.plan_lines(&env, &release) {
                            Ok(lines) => {
                                home.dialog = Some(HomeDialog::Plan {
                                    env,
                                    release,
                                    lines,
                                    top: 0,
                                });
                                return HomeEffect::None;
                            }
                            Err(e) => home.flash(crate::event::Level::Error, e),
                        }
                    }
                }
                _ => {}
            }
            home.dialog = Some(HomeDialog::Release { env, typed, pick });
            HomeEffect::None
        }
        HomeDialog::Plan {
            env,
            release,
            lines,
            mut top,
        } => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => {
                HomeEffect::Exit(HomeExit::Deploy { env, release })
            }
            KeyCode::Char('n') => {
                home.flash(crate::event::Level::Info, "nothing was changed");
                HomeEffect::None
            }
            KeyCode::Down | KeyCode::Char('j') | KeyCode::PageDown => {
                top = (top + if key.code == KeyCode::PageDown { 10 } else { 1 })
                    .min(lines.len().saturating_sub(1));
                home.dialog = Some(HomeDialog::Plan {
                    env,
                    release,
                    lines,
                    top,
                });
                HomeEffect::None
            }
            KeyCode::Up | KeyCode::Char('k') | KeyCode::PageUp => {
                top = top.saturating_sub(if key.code == KeyCode::PageUp { 10 } else { 1 });
                home.dialog = Some(HomeDialog::Plan {
                    env,
                    release,
                    lines,
                    top,
                });
                HomeEffect::None
            }
            _ => {
                home.dialog = Some(HomeDialog::Plan {
                    env,
                    release,
                    lines,
                    top,
                });
                HomeEffect::None
            }
        },
        HomeDialog::Confirm {
            exit,
            title,
            lines,
            typed_needed,
            mut typed,
        } => {
            match (&typed_needed, key.code) {
                (Some(_), KeyCode::Char(c)) if !key.ctrl => typed.push(c),
                (Some(_), KeyCode::Backspace) => {
                    typed.pop();
                }
                (Some(need), KeyCode::Enter) => {
                    if typed.trim() == need {
                        return HomeEffect::Exit(exit);
                    }
                    home.flash(
                        crate::event::Level::Warn,
                        format!("type `{need}` to confirm (esc to cancel)"),
                    );
                }
                (None, KeyCode::Char('y') | KeyCode::Enter) => return HomeEffect::Exit(exit),
                (None, KeyCode::Char('n')) => {
                    home.flash(crate::event::Level::Info, "nothing was changed");
                    return HomeEffect::None;
                }
                _ => {}
            }
            home.dialog = Some(HomeDialog::Confirm {
                exit,
                title,
                lines,
                typed_needed,
                typed,
            });
            HomeEffect::None
        }
    }
}

// ------------------------------------------------------------------------------------ drawing

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        if w > 0 {
            t.push('…');
        }
        t
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

fn block<'a>(home: &Home, title: String, focused: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_set(home.glyphs.border)
        .border_style(
            home.theme
                .get(if focused { "border_focus" } else { "border" }),
        )
        .title(Span::styled(format!(" {title} "), home.theme.get("title")))
}

/// Draw the home screen from `&Home`.
pub fn draw(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    buf.set_style(area, th.get("background"));
    if area.width < super::view::MIN_WIDTH || area.height < super::view::MIN_HEIGHT {
        buf.set_stringn(
            area.x,
            area.y,
            format!(
                "deckhand needs a terminal of at least {}×{}; q quits",
                super::view::MIN_WIDTH,
                super::view::MIN_HEIGHT
            ),
            area.width as usize,
            th.get("title"),
        );
        return;
    }
    let env_h = (env_rows(home) as u16 + 3).min(area.height / 3).max(5);
    let node_count = home.env().map(|e| e.nodes.len()).unwrap_or(0) as u16;
    let rest = area.height.saturating_sub(2 + env_h + 2);
    let nodes_h = (node_count + 3).min(rest.saturating_mul(55) / 100).max(5);
    let [header, envs, nodes, history, flash, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(env_h),
        Constraint::Length(nodes_h),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(home, header, buf);
    draw_envs(home, envs, buf);
    draw_nodes(home, nodes, buf);
    draw_history(home, history, buf);
    if let Some((level, text, until)) = &home.flash {
        if *until > home.now_ms {
            let (key, mark) = match level {
                crate::event::Level::Info => ("flash_info", home.glyphs.ok),
                crate::event::Level::Warn => ("flash_warn", "!"),
                crate::event::Level::Error => ("flash_error", home.glyphs.fail),
            };
            buf.set_stringn(
                flash.x + 1,
                flash.y,
                format!("{mark} {text}"),
                flash.width as usize - 2,
                th.get(key),
            );
        }
    }
    buf.set_line(footer.x + 1, footer.y, &footer_line(home), footer.width - 1);
    if home.dialog.is_some() {
        draw_dialog(home, area, buf);
    }
}

fn footer_line(home: &Home) -> Line<'static> {
    let th = &home.theme;
    let mut spans = Vec::new();
    let entries: Vec<(&str, &str)> = match &home.dialog {
        Some(HomeDialog::Release { .. }) => vec![
            ("tab", "complete"),
            ("↑↓", "choose"),
            ("enter", "plan"),
            ("esc", "cancel"),
        ],
        Some(HomeDialog::Plan { .. }) => {
            vec![("y/enter", "deploy"), ("↑↓", "scroll"), ("esc", "cancel")]
        }
        Some(HomeDialog::Confirm { typed_needed, .. }) => {
            if typed_needed.is_some() {
                vec![("enter", "confirm (name typed)"), ("esc", "cancel")]
            } else {
                vec![("y/enter", "confirm"), ("n/esc", "cancel")]
            }
        }
        None => {
            let mut v: Vec<(&str, &str)> = HOME_KEYS
                .iter()
                .filter(|k| applies(home, k.word))
                .map(|k| (k.shown, k.word))
                .collect();
            v.insert(0, ("↑↓", "select"));
            v
        }
    };
    for (i, (k, w)) in entries.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("  ", th.get("dim")));
        }
        spans.push(Span::styled(k.to_string(), th.get("key")));
        spans.push(Span::styled(format!(" {w}"), th.get("dim")));
    }
    Line::from(spans)
}

fn draw_header(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    let g = &home.glyphs;
    let nodes: usize = home.expected;
    let mut spans = vec![
        Span::styled(" deckhand ", th.get("accent").add_modifier(Modifier::BOLD)),
        Span::styled(home.app.clone(), th.get("title")),
        Span::styled(format!(" {} ", g.dot), th.get("dim")),
        Span::styled(
            format!(
                "{} {} {}",
                crate::util::count(home.envs.len(), "environment", "environments"),
                g.dot,
                crate::util::count(nodes, "node", "nodes")
            ),
            th.get("text"),
        ),
        Span::styled(format!(" {} ", g.dot), th.get("dim")),
        Span::styled(home.inventory.display().to_string(), th.get("dim")),
    ];
    if home.reading {
        spans.push(Span::styled(
            format!("  reading {}/{}…", home.answered, home.expected),
            th.get("flash_info"),
        ));
    }
    let pill = " HOME ";
    let w = area.width.saturating_sub(pill.len() as u16 + 1);
    buf.set_line(area.x, area.y, &Line::from(spans), w);
    buf.set_string(
        area.right().saturating_sub(pill.len() as u16 + 1),
        area.y,
        pill,
        th.get("mode_ready"),
    );
    buf.set_string(
        area.x,
        area.y + 1,
        g.hline.repeat(area.width as usize),
        th.get("border"),
    );
    let unreachable = home.nodes.values().filter(|s| !s.reachable).count();
    let sentence = if unreachable > 0 {
        format!(
            " {} cannot be read (see the nodes pane); everything else is as the nodes answered ",
            crate::util::count(unreachable, "node", "nodes")
        )
    } else if home.reading {
        " every environment, as its nodes answer ".to_string()
    } else {
        " every environment, as its nodes answered; r reads them again ".to_string()
    };
    buf.set_stringn(
        area.x + 2,
        area.y + 1,
        sentence,
        area.width as usize - 4,
        th.get("text"),
    );
}

/// How many rows the environments pane needs: one per environment, and one more under each
/// whose lock is held (who holds it and how far the run is).
fn env_rows(home: &Home) -> usize {
    home.envs
        .iter()
        .map(|e| match home.lock(e) {
            Some((t, _)) if t != "free" && t.contains(home.glyphs.dot) => 2,
            _ => 1,
        })
        .sum()
}

fn draw_envs(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    let b = block(home, "Environments".into(), home.pane == Pane::Envs);
    let inner = b.inner(area);
    b.render(area, buf);
    let w = inner.width as usize;
    // name, strategy, nodes, live, lock, last
    let (wn, ws, wc, wk) = (16usize, 11usize, 6usize, 16usize);
    let rest = w.saturating_sub(wn + ws + wc + wk + 1);
    let wl = (rest * 45 / 100).max(12);
    let wlast = rest.saturating_sub(wl);
    let head = format!(
        " {}{}{}{}{}{}",
        pad("ENVIRONMENT", wn),
        pad("STRATEGY", ws),
        pad("NODES", wc),
        pad("LIVE", wl),
        pad("LOCK", wk),
        pad("LAST DEPLOYMENT", wlast)
    );
    buf.set_stringn(inner.x, inner.y, head, w, th.get("dim"));
    let bottom = inner.y + inner.height;
    let mut y = inner.y + 1;
    // Keep the selected environment in view.
    let room = inner.height.saturating_sub(1) as usize;
    let first = if home.selected_env >= room / 2 && env_rows(home) > room {
        home.selected_env + 1 - (room / 2).max(1)
    } else {
        0
    };
    for (i, e) in home.envs.iter().enumerate().skip(first) {
        if y >= bottom {
            break;
        }
        let selected = i == home.selected_env;
        let base = if selected {
            th.get("selection")
        } else {
            th.get("text")
        };
        let mark = match (selected, home.glyphs.ascii) {
            (true, false) => "▸",
            (true, true) => ">",
            _ => " ",
        };
        let (live, live_style) = match home.live(e) {
            None => ("…".to_string(), th.get("dim")),
            Some((t, true)) => (format!("{t} MIXED"), th.get("flash_warn")),
            Some((t, false)) => (t, th.get("title")),
        };
        let lock = home.lock(e);
        let (short, detail) = match &lock {
            None => ("…".to_string(), None),
            Some((t, _)) => match t.split_once(&format!(" {} ", home.glyphs.dot)) {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (t.clone(), None),
            },
        };
        let lock_style = match &lock {
            None => th.get("dim"),
            Some((_, true)) => th.get("flash_error"),
            Some((t, false)) if t == "free" => th.get("dim"),
            Some(_) => th.get("node_updating"),
        };
        let (last, last_style) = match home.history(&e.name).first() {
            Some(d) => (
                format!(
                    "{} {} {} {} {} {}",
                    d.release,
                    home.glyphs.dot,
                    d.who,
                    home.ago(d.started.as_deref()),
                    home.glyphs.dot,
                    d.outcome
                ),
                outcome_style(home, &d.outcome),
            ),
            None if home.live(e).is_none() => ("…".into(), th.get("dim")),
            None => ("none recorded".into(), th.get("dim")),
        };
        let pick = |style: Style| if selected { base } else { style };
        let spans = vec![
            Span::styled(
                format!("{mark} {}", pad(&e.name, wn - 1)),
                base.add_modifier(Modifier::BOLD),
            ),
            Span::styled(pad(&e.strategy, ws), base),
            Span::styled(pad(&e.nodes.len().to_string(), wc), base),
            Span::styled(pad(&live, wl), pick(live_style)),
            Span::styled(pad(&short, wk), pick(lock_style)),
            Span::styled(pad(&last, wlast), pick(last_style)),
        ];
        buf.set_line(inner.x, y, &Line::from(spans), inner.width);
        y += 1;
        if let Some(d) = detail {
            if y < bottom {
                let arrow = if home.glyphs.ascii { "\\_" } else { "└" };
                buf.set_line(
                    inner.x,
                    y,
                    &Line::from(vec![
                        Span::styled(" ".repeat(wn + ws + wc - 1), th.get("dim")),
                        Span::styled(format!("{arrow} "), th.get("dim")),
                        Span::styled(d, lock_style),
                    ]),
                    inner.width,
                );
                y += 1;
            }
        }
    }
}

fn outcome_style(home: &Home, outcome: &str) -> Style {
    home.theme.get(match outcome {
        "deployed" | "verified" => "phase_ok",
        "running" => "node_updating",
        "rolled back" => "node_rolled_back",
        _ => "phase_failed",
    })
}

fn draw_nodes(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    let Some(e) = home.env() else {
        block(home, "Nodes".into(), false).render(area, buf);
        return;
    };
    let rot = home.rotation.get(&e.name);
    let name = if e.protected {
        format!("{} (protected)", e.name)
    } else {
        e.name.clone()
    };
    let title = match rot {
        Some(Err(why)) => format!("{name} · nodes · balancer: {why}"),
        Some(Ok(m)) => format!(
            "{name} · nodes · balancer: {}/{} in rotation",
            m.values().filter(|v| **v).count(),
            e.nodes.len()
        ),
        None if e.balancer => format!("{name} · nodes · balancer: …"),
        None => format!("{name} · nodes"),
    };
    let b = block(home, title, home.pane == Pane::Nodes);
    let inner = b.inner(area);
    b.render(area, buf);
    let w = inner.width as usize;
    let (wn, wh, wl, wp, wb) = (14usize, 16usize, 12usize, 14usize, 13usize);
    let wr = w.saturating_sub(wn + wh + wl + wp + wb + 1);
    buf.set_stringn(
        inner.x,
        inner.y,
        format!(
            " {}{}{}{}{}{}",
            pad("NODE", wn),
            pad("HOST", wh),
            pad("LIVE", wl),
            pad("PREVIOUS", wp),
            pad("BALANCER", wb),
            pad("RELEASES ON THE NODE (a rollback can reach)", wr)
        ),
        w,
        th.get("dim"),
    );
    let rows = inner.height.saturating_sub(1) as usize;
    let first = home.selected_node.saturating_sub(rows.saturating_sub(1));
    for (i, (name, st)) in home.env_nodes(e).enumerate().skip(first).take(rows) {
        let y = inner.y + 1 + (i - first) as u16;
        let selected = home.pane == Pane::Nodes && i == home.selected_node;
        let base = if selected {
            th.get("selection")
        } else {
            th.get("text")
        };
        let host = st
            .map(|s| s.host.clone())
            .or_else(|| home.hosts.get(name).cloned())
            .unwrap_or_default();
        let lead = vec![
            Span::styled(
                format!(" {}", pad(name, wn)),
                base.add_modifier(Modifier::BOLD),
            ),
            Span::styled(pad(&host, wh), if selected { base } else { th.get("dim") }),
        ];
        let mut spans = lead;
        match st {
            None => spans.push(Span::styled("… reading", th.get("dim"))),
            Some(s) if !s.reachable => spans.push(Span::styled(
                format!("UNREACHABLE: {}", s.error.as_deref().unwrap_or("no answer")),
                th.get("flash_error"),
            )),
            Some(s) => {
                let balancer = match rot {
                    Some(Ok(m)) => match m.get(name) {
                        Some(true) => ("in rotation".to_string(), "node_in_rotation"),
                        Some(false) => ("OUT".to_string(), "node_drained"),
                        None => ("unknown".to_string(), "dim"),
                    },
                    Some(Err(_)) => ("unreadable".to_string(), "flash_warn"),
                    None if e.balancer => ("…".to_string(), "dim"),
                    None => ("none".to_string(), "dim"),
                };
                let releases = s.releases.join(" ");
                spans.push(Span::styled(
                    pad(s.live_release.as_deref().unwrap_or("none"), wl),
                    if selected { base } else { th.get("title") },
                ));
                spans.push(Span::styled(
                    pad(s.previous_release.as_deref().unwrap_or("-"), wp),
                    base,
                ));
                spans.push(Span::styled(
                    pad(&balancer.0, wb),
                    if selected { base } else { th.get(balancer.1) },
                ));
                spans.push(Span::styled(
                    pad(&releases, wr),
                    if selected { base } else { th.get("dim") },
                ));
            }
        }
        buf.set_line(inner.x, y, &Line::from(spans), inner.width);
    }
}

fn draw_history(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    let Some(e) = home.env() else {
        return;
    };
    let list = home.history(&e.name);
    let b = block(
        home,
        format!("History · {} · newest first", e.name),
        home.pane == Pane::History,
    );
    let inner = b.inner(area);
    b.render(area, buf);
    let w = inner.width as usize;
    let (wt, wk, wr, wo, wb, wd) = (17usize, 9usize, 20usize, 24usize, 18usize, 9usize);
    let wf = w.saturating_sub(wt + wk + wr + wo + wb + wd + 1);
    buf.set_stringn(
        inner.x,
        inner.y,
        format!(
            " {}{}{}{}{}{}{}",
            pad("WHEN (UTC)", wt),
            pad("KIND", wk),
            pad("RELEASE", wr),
            pad("OUTCOME", wo),
            pad("BY", wb),
            pad("TOOK", wd),
            pad("FAILED NODES", wf)
        ),
        w,
        th.get("dim"),
    );
    if list.is_empty() {
        let text = if home.live(e).is_none() {
            " … reading the nodes' history"
        } else {
            " no deployment recorded on these nodes yet: d deploys"
        };
        buf.set_stringn(inner.x, inner.y + 1, text, w, th.get("dim"));
        return;
    }
    let rows = inner.height.saturating_sub(1) as usize;
    let first = home.selected_history.saturating_sub(rows.saturating_sub(1));
    for (i, d) in list.iter().enumerate().skip(first).take(rows) {
        let y = inner.y + 1 + (i - first) as u16;
        let selected = home.pane == Pane::History && i == home.selected_history;
        let base = if selected {
            th.get("selection")
        } else {
            th.get("text")
        };
        let outcome = match (d.verified, d.journal.is_some()) {
            (true, _) => format!("{} {} verified", d.outcome, home.glyphs.ok),
            _ => d.outcome.clone(),
        };
        let took = d.took();
        let failed = if d.failed_nodes.is_empty() {
            "-".into()
        } else {
            d.failed_nodes.join(", ")
        };
        let journal = if d.journal.is_some() { " ▶" } else { "" };
        let journal = if home.glyphs.ascii && !journal.is_empty() {
            " >"
        } else {
            journal
        };
        let spans = vec![
            Span::styled(format!(" {}", pad(&d.when(), wt)), base),
            Span::styled(pad(&d.kind, wk), base.add_modifier(Modifier::BOLD)),
            Span::styled(
                pad(&d.releases(home.glyphs.arrow), wr),
                if selected { base } else { th.get("title") },
            ),
            Span::styled(
                pad(&outcome, wo),
                if selected {
                    base
                } else {
                    outcome_style(home, &d.outcome)
                },
            ),
            Span::styled(pad(&d.by(), wb), base),
            Span::styled(pad(&took, wd), base),
            Span::styled(
                pad(&format!("{failed}{journal}"), wf),
                if selected { base } else { th.get("dim") },
            ),
        ];
        buf.set_line(inner.x, y, &Line::from(spans), inner.width);
    }
}

fn draw_dialog(home: &Home, area: Rect, buf: &mut Buffer) {
    let th = &home.theme;
    let Some(dialog) = &home.dialog else { return };
    let cursor = if home.glyphs.ascii { "_" } else { "▏" };
    let (title, lines): (String, Vec<Line>) = match dialog {
        HomeDialog::Release { env, typed, pick } => {
            let choices = home.matches(env, typed);
            let mut l = vec![
                Line::from(Span::styled(
                    "Release to deploy (tab completes from the releases the nodes know):",
                    th.get("text"),
                )),
                Line::from(Span::styled(
                    format!("> {typed}{cursor}"),
                    th.get("selection"),
                )),
                Line::raw(""),
            ];
            if choices.is_empty() {
                l.push(Line::from(Span::styled(
                    "  (a new release: no node has it yet)",
                    th.get("dim"),
                )));
            }
            for (i, c) in choices.iter().take(8).enumerate() {
                let live_here = home
                    .envs
                    .iter()
                    .find(|e| &e.name == env)
                    .and_then(|e| home.live(e))
                    .is_some_and(|(t, _)| t.split_whitespace().next() == Some(c.as_str()));
                let note = if live_here { "  (live)" } else { "" };
                let style = if i == *pick {
                    th.get("selection")
                } else {
                    th.get("text")
                };
                l.push(Line::from(Span::styled(format!("  {c}{note}"), style)));
            }
            (format!("Deploy to {env}"), l)
        }
        HomeDialog::Plan {
            env,
            release,
            lines,
            top,
        } => {
            let room = area.height.saturating_sub(8) as usize;
            let l = lines
                .iter()
                .skip(*top)
                .take(room)
                .map(|s| Line::from(Span::styled(s.clone(), th.get("text"))))
                .collect();
            (format!("Deploy {release} to {env}? The plan"), l)
        }
        HomeDialog::Confirm {
            title,
            lines,
            typed_needed,
            typed,
            ..
        } => {
            let mut l: Vec<Line> = lines
                .iter()
                .map(|s| Line::from(Span::styled(s.clone(), th.get("text"))))
                .collect();
            if let Some(need) = typed_needed {
                l.push(Line::raw(""));
                l.push(Line::from(vec![
                    Span::styled("Protected environment. Type ", th.get("flash_warn")),
                    Span::styled(need.clone(), th.get("title")),
                    Span::styled(" to confirm: ", th.get("flash_warn")),
                ]));
                l.push(Line::from(Span::styled(
                    format!("> {typed}{cursor}"),
                    th.get("selection"),
                )));
            }
            (title.clone(), l)
        }
    };
    let mut lines = lines;
    lines.push(Line::raw(""));
    lines.push(footer_line(home));
    super::dialog::draw_box(&home.theme, &home.glyphs, &title, lines, area, buf);
}

// ------------------------------------------------------------------------------------ the loop

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Show the home screen until the operator chooses something; reads the fleet with `reader`
/// (again on `r`), filling the panes in as nodes answer. The terminal is given back on return.
pub async fn show(home: &mut Home, reader: &Reader) -> anyhow::Result<HomeExit> {
    super::log::install();
    crossterm::terminal::enable_raw_mode()
        .context("switching the terminal to raw mode (is stdout a terminal?)")?;
    let entered = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        crossterm::cursor::Hide
    );
    if let Err(e) = entered {
        super::restore_terminal();
        return Err(e).context("entering the alternate screen");
    }
    let result = home_loop(home, reader).await;
    super::restore_terminal();
    result
}

async fn home_loop(home: &mut Home, reader: &Reader) -> anyhow::Result<HomeExit> {
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
            .context("opening the terminal")?;
    let mut input = EventStream::new();
    // The terminal going away (SIGHUP) or a polite stop (SIGTERM): nothing runs here, so leave.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    home.refreshing();
    let mut fleet = crate::fleet::spawn_read(reader.clone());
    let mut fleet_open = true;
    let mut dirty = true;
    let mut last_draw: Option<std::time::Instant> = None;
    loop {
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= Duration::from_millis(super::FRAME_MS))
        {
            home.set_clock(now_ms());
            terminal
                .draw(|f| {
                    let area = f.area();
                    draw(home, area, f.buffer_mut());
                })
                .context("drawing the home screen")?;
            dirty = false;
            last_draw = Some(std::time::Instant::now());
        }
        // Nothing changes on its own: wait for a key, an answer, or the flash to end.
        let wait = if dirty {
            Duration::from_millis(super::FRAME_MS)
        } else if home.flash.as_ref().is_some_and(|f| f.2 > now_ms()) {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            news = fleet.recv(), if fleet_open => match news {
                Some(n) => {
                    home.apply(n);
                    while let Ok(n) = fleet.try_recv() {
                        home.apply(n);
                    }
                    dirty = true;
                }
                None => {
                    fleet_open = false;
                    home.reading = false;
                    dirty = true;
                }
            },
            term = input.next() => match term {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    dirty = true;
                    match handle_key(home, Key::from_event(&k)) {
                        HomeEffect::Exit(x) => return Ok(x),
                        HomeEffect::Refresh => {
                            home.refreshing();
                            fleet = crate::fleet::spawn_read(reader.clone());
                            fleet_open = true;
                            home.flash(crate::event::Level::Info, "reading every node again");
                        }
                        HomeEffect::None => {}
                    }
                }
                Some(Ok(TermEvent::Resize(_, _))) => {
                    let _ = terminal.autoresize();
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the keyboard"),
                None => return Ok(HomeExit::Quit),
            },
            _ = sigterm.recv() => return Ok(HomeExit::Quit),
            _ = sighup.recv() => return Ok(HomeExit::Quit),
            _ = tokio::time::sleep(wait) => { dirty = true; }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::remote::{HistoryEntry, LockInfo};

    fn inv() -> Inventory {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("deckhand.toml");
        std::fs::write(
            &p,
            "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n\
             [nodes.web-1]\nhost = \"10.0.0.1\"\n[nodes.web-2]\nhost = \"10.0.0.2\"\n[nodes.stg-1]\nhost = \"10.0.1.1\"\n\n\
             [environments.staging]\nnodes = [\"stg-1\"]\n\n\
             [environments.production]\nnodes = [\"web-1\", \"web-2\"]\nprotected = true\nrequires = \"staging\"\n\n\
             [[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n",
        )
        .expect("write");
        crate::inventory::load(&p).expect("inventory")
    }

    fn node(name: &str, live: &str, releases: &[&str]) -> NodeStatus {
        let mut s = NodeStatus::new(name, "10.0.0.1".into());
        s.reachable = true;
        s.live_release = Some(live.into());
        s.previous_release = releases.get(1).map(|r| r.to_string());
        s.releases = releases.iter().map(|r| r.to_string()).collect();
        s
    }

    fn key(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: false,
        }
    }
    fn code(code: KeyCode) -> Key {
        Key { code, ctrl: false }
    }

    fn home() -> Home {
        let mut h = Home::new(&inv(), Theme::default_theme(), Glyphs::UNICODE);
        h.set_journal_dir(PathBuf::from("/nonexistent"));
        h
    }

    #[test]
    fn the_panes_fill_in_as_nodes_answer_and_mixed_releases_are_marked() {
        let mut h = home();
        let prod = h.envs[1].clone();
        assert_eq!(h.live(&prod), None, "nothing answered yet");
        h.apply(FleetNews::Node(Box::new(node(
            "web-1",
            "v1.1",
            &["v1.1", "v1.0"],
        ))));
        assert_eq!(h.live(&prod), Some(("v1.1".into(), false)));
        assert_eq!(h.lock(&prod), Some(("free".into(), false)));
        h.apply(FleetNews::Node(Box::new(node("web-2", "v1.0", &["v1.0"]))));
        assert_eq!(h.live(&prod), Some(("v1.1 ×1 · v1.0 ×1".into(), true)));
        let mut down = NodeStatus::new("stg-1", "10.0.1.1".into());
        down.error = Some("ssh: connection refused".into());
        h.apply(FleetNews::Node(Box::new(down)));
        let area = Rect::new(0, 0, 120, 36);
        let mut buf = Buffer::empty(area);
        h.select_env(0);
        draw(&h, area, &mut buf);
        let text: String = buf.content().iter().map(|c| c.symbol()).collect();
        assert!(
            text.contains("UNREACHABLE: ssh: connection refused"),
            "the reason is shown"
        );
    }

    #[test]
    fn a_stale_lock_is_marked_and_offers_unlock() {
        let mut h = home();
        let mut s = node("web-1", "v1.1", &["v1.1"]);
        s.locked = true;
        s.lock_age_s = Some(720);
        s.lock = Some(LockInfo {
            id: "d1".into(),
            who: "ann".into(),
            host: "jump-1".into(),
            pid: 1,
            at: "t".into(),
            env: "production".into(),
            release: "v1.2".into(),
        });
        h.apply(FleetNews::Node(Box::new(s)));
        h.select_env(1);
        let (text, stale) = h.lock(&h.envs[1].clone()).expect("read");
        assert!(stale);
        assert!(text.starts_with("STALE 12 min"), "{text}");
        assert_eq!(handle_key(&mut h, key('u')), HomeEffect::None);
        assert!(matches!(h.dialog, Some(HomeDialog::Confirm { .. })));
        assert_eq!(
            handle_key(&mut h, key('y')),
            HomeEffect::Exit(HomeExit::Unlock {
                env: "production".into(),
                deployment: "d1".into()
            })
        );
        // A live lock (a heartbeat 5 s ago) is not offered: no dialog, a word instead.
        let mut live = node("web-1", "v1.1", &["v1.1"]);
        live.locked = true;
        live.lock_age_s = Some(5);
        live.lock = Some(LockInfo {
            id: "d2".into(),
            who: "bob".into(),
            host: "jump-2".into(),
            pid: 2,
            at: "t".into(),
            env: "production".into(),
            release: "v1.3".into(),
        });
        h.dialog = None;
        h.apply(FleetNews::Node(Box::new(live)));
        assert_eq!(handle_key(&mut h, key('u')), HomeEffect::None);
        assert!(
            h.dialog.is_none(),
            "a live lock is never offered for removal"
        );
    }

    #[test]
    fn deploy_goes_release_then_plan_then_confirm() {
        let mut h = home();
        h.apply(FleetNews::Node(Box::new(node(
            "web-1",
            "v1.1",
            &["v1.1", "v1.0"],
        ))));
        h.apply(FleetNews::Node(Box::new(node(
            "stg-1",
            "v1.2",
            &["v1.2", "v1.1"],
        ))));
        h.select_env(1);
        assert_eq!(h.known_releases("production"), vec!["v1.1", "v1.0", "v1.2"]);
        handle_key(&mut h, key('d'));
        handle_key(&mut h, key('v'));
        handle_key(&mut h, key('1'));
        handle_key(&mut h, key('.'));
        handle_key(&mut h, key('2'));
        handle_key(&mut h, code(KeyCode::Enter));
        match &h.dialog {
            Some(HomeDialog::Plan { release, lines, .. }) => {
                assert_eq!(release, "v1.2");
                assert!(lines.iter().any(|l| l.contains("switch")), "{lines:?}");
            }
            other => panic!("no plan: {other:?}"),
        }
        assert_eq!(
            handle_key(&mut h, key('y')),
            HomeEffect::Exit(HomeExit::Deploy {
                env: "production".into(),
                release: "v1.2".into()
            })
        );
    }

    #[test]
    fn a_protected_rollback_names_nodes_and_needs_the_name() {
        let mut h = home();
        h.apply(FleetNews::Node(Box::new(node(
            "web-1",
            "v1.1",
            &["v1.1", "v1.0"],
        ))));
        h.apply(FleetNews::Node(Box::new(node(
            "web-2",
            "v1.1",
            &["v1.1", "v1.0"],
        ))));
        h.select_env(1);
        handle_key(&mut h, key('R'));
        match &h.dialog {
            Some(HomeDialog::Confirm { lines, .. }) => {
                assert!(
                    lines
                        .iter()
                        .any(|l| l.contains("web-2") && l.contains("v1.1 → v1.0")),
                    "{lines:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(handle_key(&mut h, key('y')), HomeEffect::None, "y is typed");
        for _ in 0..1 {
            handle_key(&mut h, code(KeyCode::Backspace));
        }
        for c in "production".chars() {
            handle_key(&mut h, key(c));
        }
        assert_eq!(
            handle_key(&mut h, code(KeyCode::Enter)),
            HomeEffect::Exit(HomeExit::Rollback {
                env: "production".into()
            })
        );
    }

    #[test]
    fn history_joins_the_nodes_lines_and_keys_apply_only_when_they_can() {
        let mut h = home();
        let mut s = node("web-1", "v1.1", &["v1.1", "v1.0"]);
        s.history = vec![HistoryEntry {
            from: Some("v1.0".into()),
            ..HistoryEntry::new(
                "20260101T100000Z-0001",
                "deploy",
                "v1.1",
                "ann",
                "2026-01-01T10:00:05+00:00",
                "ok",
            )
        }];
        h.apply(FleetNews::Node(Box::new(s)));
        assert_eq!(h.history("production").len(), 1);
        h.select_env(1);
        // No journal here: enter on the history does not replay, and says why.
        h.pane = Pane::History;
        assert_eq!(handle_key(&mut h, code(KeyCode::Enter)), HomeEffect::None);
        assert!(h.flash.as_ref().is_some_and(|f| f.1.contains("journal")));
        // Nobody deploys: watch says so.
        assert_eq!(handle_key(&mut h, key('w')), HomeEffect::None);
        assert_eq!(
            handle_key(&mut h, key('q')),
            HomeEffect::Exit(HomeExit::Quit)
        );
    }
}
