//! Driving the balancers around a node's turn: drain (respecting `min_in_rotation`, waiting for
//! sessions up to `drain_timeout`, then checking the balancer's own answer) and enable (after
//! `min_healthy`, then waiting until the balancer reports the node up).
//!
//! When a balancer cannot be reached at all, the run pauses and says which nodes may be out of
//! rotation; a promote retries the step. Headless, the step fails and the message says the same.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Run;
use crate::event::{EventKind, Level, StepResult, Stream};
use crate::lb::{Admin, Configured, LbError, ServerState};

const POLL: Duration = Duration::from_millis(250);

impl Run {
    pub(super) fn lb_server(&self, node: &str) -> String {
        self.inv
            .node(node)
            .map(|n| n.lb_server.clone())
            .unwrap_or_else(|| node.to_string())
    }

    /// Every node of the run as (server name, placeholder values).
    pub(super) fn lb_servers(&self) -> Vec<(String, BTreeMap<&'static str, String>)> {
        self.plan
            .nodes
            .iter()
            .map(|n| {
                (
                    self.lb_server(n),
                    self.vars(Some(n), &self.plan.release, None),
                )
            })
            .collect()
    }

    fn lb_line(&self, node: &str, phase: &str, line: String) {
        self.em.emit(EventKind::Output {
            node: Some(node.to_string()),
            phase: phase.to_string(),
            stream: Stream::Stdout,
            line,
        });
    }

    async fn pause(&self, d: Duration, cancel: &CancellationToken) -> Result<(), LbError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = cancel.cancelled() => Err(LbError::Unreachable("cancelled".into())),
        }
    }

    /// The state of one node's server, if this balancer reports states at all.
    async fn server_state(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<ServerState>, LbError> {
        let me = self.lb_server(node);
        let servers = [(me.clone(), self.vars(Some(node), &self.plan.release, None))];
        let st = lb.driver.states(&servers, cancel).await?;
        Ok(st.get(&me).cloned())
    }

    async fn drain_one(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        let me = self.lb_server(node);
        let servers = self.lb_servers();
        let vars = self.vars(Some(node), &self.plan.release, None);
        // Never leave fewer than min_in_rotation nodes serving.
        let started = Instant::now();
        let mut told = false;
        loop {
            let st = lb.driver.states(&servers, cancel).await?;
            if st.is_empty() {
                break; // a command balancer without a `state` command cannot say
            }
            let others = servers
                .iter()
                .filter(|(s, _)| *s != me)
                .filter(|(s, _)| st.get(s).map(|x| x.in_rotation()).unwrap_or(false))
                .count();
            if others >= lb.cfg.min_in_rotation {
                break;
            }
            if started.elapsed() >= lb.cfg.drain_timeout {
                return Err(LbError::Refused(format!(
                    "draining {node} would leave {} in rotation, below min_in_rotation = {}; waited {}",
                    crate::util::count(others, "node", "nodes"),
                    lb.cfg.min_in_rotation,
                    crate::util::format_duration(started.elapsed())
                )));
            }
            if !told {
                told = true;
                self.lb_line(
                    node,
                    "drain",
                    format!(
                        "waiting: only {} in rotation, min_in_rotation = {}",
                        crate::util::count(others, "other node", "other nodes"),
                        lb.cfg.min_in_rotation
                    ),
                );
            }
            self.pause(Duration::from_secs(1), cancel).await?;
        }
        lb.driver.set(&me, &vars, Admin::Drain, cancel).await?;
        self.rec(node, |r| r.drained = true);
        // Let running sessions end.
        let started = Instant::now();
        let mut last_told = None;
        let mut zero_seen = false;
        loop {
            let Some(s) = self.server_state(lb, node, cancel).await? else {
                if lb.driver.reports_every_server() {
                    return Err(LbError::Refused(format!(
                        "{} does not know server {me}",
                        lb.driver.describe()
                    )));
                }
                break;
            };
            if s.sessions == 0 {
                // Twice in a row: a request being handed over at the moment of the drain counts.
                if zero_seen {
                    break;
                }
                zero_seen = true;
                self.pause(POLL, cancel).await?;
                continue;
            }
            zero_seen = false;
            if started.elapsed() >= lb.cfg.drain_timeout {
                let msg = format!(
                    "{} session(s) still open on {node} after {}",
                    s.sessions,
                    crate::util::format_duration(lb.cfg.drain_timeout)
                );
                match lb.cfg.drain_timeout_action {
                    crate::inventory::DrainTimeoutAction::Proceed => {
                        self.lb_line(
                            node,
                            "drain",
                            format!("{msg}; going on (drain_timeout_action = proceed)"),
                        );
                        break;
                    }
                    crate::inventory::DrainTimeoutAction::Fail => {
                        return Err(LbError::Refused(format!(
                            "{msg} (drain_timeout_action = fail)"
                        )));
                    }
                }
            }
            if last_told != Some(s.sessions) {
                last_told = Some(s.sessions);
                self.lb_line(
                    node,
                    "drain",
                    format!("waiting for {} session(s) to end", s.sessions),
                );
            }
            self.pause(POLL, cancel).await?;
        }
        // Believe the balancer, not the intention.
        if let Some(s) = self.server_state(lb, node, cancel).await? {
            if s.admin == Admin::Ready {
                return Err(LbError::Refused(format!(
                    "{} still reports {me} as {} after the drain",
                    lb.driver.describe(),
                    s.word
                )));
            }
            self.lb_line(
                node,
                "drain",
                format!("{}: {me} is {}", lb.driver.describe(), s.word),
            );
        }
        Ok(())
    }

    async fn enable_one(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        let me = self.lb_server(node);
        let vars = self.vars(Some(node), &self.plan.release, None);
        lb.driver.set(&me, &vars, Admin::Ready, cancel).await?;
        // Wait until the balancer itself says the node is up (its own health checks pass).
        let started = Instant::now();
        loop {
            let Some(s) = self.server_state(lb, node, cancel).await? else {
                if lb.driver.reports_every_server() {
                    return Err(LbError::Refused(format!(
                        "{} does not know server {me}",
                        lb.driver.describe()
                    )));
                }
                break;
            };
            if s.in_rotation() {
                self.lb_line(
                    node,
                    "enable",
                    format!("{}: {me} is {}", lb.driver.describe(), s.word),
                );
                break;
            }
            if started.elapsed() >= lb.cfg.timeout {
                return Err(LbError::Refused(format!(
                    "{} reports {me} as {} {} after enabling it",
                    lb.driver.describe(),
                    s.word,
                    crate::util::format_duration(started.elapsed())
                )));
            }
            self.pause(POLL, cancel).await?;
        }
        self.rec(node, |r| r.drained = false);
        Ok(())
    }

    /// Drain (or enable) a node on every balancer of the environment, as one step.
    pub(super) async fn balancer(
        &self,
        node: &str,
        drain: bool,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        if self.lbs.is_empty() {
            return Ok(());
        }
        let phase = if drain { "drain" } else { "enable" };
        let shown = format!(
            "{} {} on {}",
            phase,
            self.lb_server(node),
            self.lbs
                .iter()
                .map(|l| l.driver.describe())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.step(Some(node), phase, Some(shown), async {
            if !drain {
                let hold = self
                    .lbs
                    .iter()
                    .map(|l| l.cfg.min_healthy)
                    .max()
                    .unwrap_or_default();
                if !hold.is_zero() {
                    self.lb_line(
                        node,
                        phase,
                        format!(
                            "healthy; holding it out for min_healthy = {}",
                            crate::util::format_duration(hold)
                        ),
                    );
                    let _ = self.pause(hold, cancel).await;
                }
            }
            let result = loop {
                let mut r = Ok(());
                for lb in &self.lbs {
                    r = if drain {
                        self.drain_one(lb, node, cancel).await
                    } else {
                        self.enable_one(lb, node, cancel).await
                    };
                    if r.is_err() {
                        break;
                    }
                }
                match r {
                    Ok(()) => break Ok(()),
                    Err(LbError::Unreachable(m)) if !cancel.is_cancelled() => {
                        let out = self.out_of_rotation();
                        let who = if out.is_empty() {
                            "no node is known to be out of rotation".to_string()
                        } else {
                            format!(
                                "out of rotation as far as deckhand knows: {}",
                                out.join(", ")
                            )
                        };
                        if self.opts.headless {
                            break Err(format!("{m}; {who}"));
                        }
                        self.ctl.step_ended();
                        let gate = self
                            .ctl
                            .gate(
                                format!("the balancer cannot be reached: {m}; {who}. Fix it, then promote to retry the {phase} of {node}; R rolls back, a aborts"),
                                false,
                            )
                            .await;
                        self.ctl.step_started();
                        if gate.is_err() {
                            break Err(format!("{m}; {who}"));
                        }
                        self.em
                            .notice(Level::Info, format!("retrying the {phase} of {node}"));
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            if result.is_ok() {
                self.em.emit(EventKind::Rotation {
                    node: node.to_string(),
                    in_rotation: !drain,
                });
                (StepResult::Ok, result)
            } else {
                (StepResult::Failed, result)
            }
        })
        .await
    }

    /// Nodes this run took out of rotation and has not put back.
    pub(super) fn out_of_rotation(&self) -> Vec<String> {
        if !self.plan.groups.is_empty() {
            return Vec::new(); // blue-green keeps a group out by design
        }
        self.plan
            .nodes
            .iter()
            .filter(|n| self.rec(n, |r| r.drained))
            .cloned()
            .collect()
    }

    /// Preflight for balancers: reachable, and every node known to each of them. Emits each
    /// node's measured rotation state.
    pub(super) async fn balancer_preflight(&self) -> Result<(), Vec<String>> {
        let never = CancellationToken::new();
        let servers = self.lb_servers();
        let mut problems = Vec::new();
        for lb in &self.lbs {
            match lb.driver.states(&servers, &never).await {
                Err(e) => problems.push(format!("{}: {e}", lb.driver.describe())),
                Ok(st) if st.is_empty() => {}
                Ok(st) => {
                    for n in &self.plan.nodes {
                        let server = self.lb_server(n);
                        match st.get(&server) {
                            Some(s) => self.em.emit(EventKind::Rotation {
                                node: n.clone(),
                                in_rotation: s.in_rotation(),
                            }),
                            None => problems.push(format!(
                                "{n}: {} has no server `{server}` (set lb_server on the node if its name differs)",
                                lb.driver.describe()
                            )),
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Which nodes every balancer has in rotation now (None when a balancer cannot say).
    pub(super) async fn rotation_now(&self) -> Result<Option<Vec<String>>, String> {
        let never = CancellationToken::new();
        let servers = self.lb_servers();
        let mut serving: Option<Vec<String>> = None;
        for lb in &self.lbs {
            let st = lb
                .driver
                .states(&servers, &never)
                .await
                .map_err(|e| e.to_string())?;
            if st.is_empty() {
                return Ok(None);
            }
            let here: Vec<String> = self
                .plan
                .nodes
                .iter()
                .filter(|n| {
                    st.get(&self.lb_server(n))
                        .map(|s| s.in_rotation())
                        .unwrap_or(false)
                })
                .cloned()
                .collect();
            serving = Some(match serving {
                None => here,
                Some(prev) => prev.into_iter().filter(|n| here.contains(n)).collect(),
            });
        }
        Ok(serving)
    }

    /// If a balancer has this node out of rotation, check its health and put it back.
    pub(super) async fn ensure_in_rotation(&self, node: &str, release: &str) -> Result<(), String> {
        if self.lbs.is_empty() || !self.plan.groups.is_empty() {
            return Ok(());
        }
        let never = CancellationToken::new();
        let mut out = false;
        for lb in &self.lbs {
            if let Ok(Some(s)) = self.server_state(lb, node, &never).await {
                out |= !s.in_rotation();
            }
        }
        if !out {
            return Ok(());
        }
        self.em.notice(
            Level::Warn,
            format!("{node} is on {release} but out of rotation; checking it and putting it back"),
        );
        self.rec(node, |r| r.drained = true);
        let cancel = self.ctl.forward.clone();
        self.health(node, release, &cancel).await?;
        self.balancer(node, false, &cancel).await
    }
}
