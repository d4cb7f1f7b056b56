//! Balancing: the environment's balancers around a node's turn. Drain respects
//! `min_in_rotation`, waits for sessions up to `drain_timeout`, then believes only the
//! balancer's own answer; enable waits `min_healthy`, then until the balancer reports the node up.
//!
//! When a balancer cannot be reached at all, a watched run pauses at a gate and says which nodes
//! may be out of rotation; a promote retries the step. Headless, the step fails with the same
//! words. This part owns the drivers and the server names; it records drained nodes in the
//! ledger and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::error::StepError;
use super::ledger::Ledger;
use super::script::Vars;
use super::steps::StepRunner;
use crate::event::{EventKind, Level, Stream};
use crate::inventory::DrainTimeoutAction;
use crate::lb::{Admin, Configured, LbError, ServerState};
use crate::util::{count, format_duration};

/// Waits between reads of a server that is not there yet: at once, then a few milliseconds,
/// doubling up to a quarter of a second.
#[derive(Debug, Default)]
struct Backoff {
    tries: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(2);
    const MOST: Duration = Duration::from_millis(250);

    fn next(&mut self) -> Duration {
        let d = match self.tries {
            0 => Duration::ZERO,
            n => Self::FIRST
                .saturating_mul(1 << (n - 1).min(16))
                .min(Self::MOST),
        };
        self.tries += 1;
        d
    }
}

/// One node of the run as the balancers know it.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub node: String,
    /// Its server name in the balancer (`lb_server`, default the node's name).
    pub name: String,
    /// The node's placeholder values, for command balancers.
    pub vars: Vars,
}

pub(crate) struct Balancing {
    lbs: Vec<Configured>,
    servers: Vec<Server>,
    steps: Arc<StepRunner>,
    ledger: Arc<Ledger>,
    /// Nobody can fix a lost balancer and promote: fail the step instead of waiting.
    headless: bool,
    /// Blue-green keeps a whole group out of rotation by design.
    blue_green: bool,
}

impl Balancing {
    pub fn new(
        lbs: Vec<Configured>,
        servers: Vec<Server>,
        steps: Arc<StepRunner>,
        ledger: Arc<Ledger>,
        headless: bool,
        blue_green: bool,
    ) -> Self {
        Balancing {
            lbs,
            servers,
            steps,
            ledger,
            headless,
            blue_green,
        }
    }

    /// The environment has at least one balancer.
    pub fn any(&self) -> bool {
        !self.lbs.is_empty()
    }

    fn server(&self, node: &str) -> Server {
        self.servers
            .iter()
            .find(|s| s.node == node)
            .cloned()
            .unwrap_or_else(|| Server {
                node: node.to_string(),
                name: node.to_string(),
                vars: Vars::new(),
            })
    }

    fn names_and_vars(&self) -> Vec<(String, Vars)> {
        self.servers
            .iter()
            .map(|s| (s.name.clone(), s.vars.clone()))
            .collect()
    }

    fn line(&self, node: &str, phase: &str, line: String) {
        self.steps.em.emit(EventKind::Output {
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
        let s = self.server(node);
        let st = lb
            .driver
            .states(&[(s.name.clone(), s.vars)], cancel)
            .await?;
        Ok(st.get(&s.name).cloned())
    }

    /// Never leave fewer than `min_in_rotation` other nodes serving: wait (up to
    /// `drain_timeout`) until enough are in rotation.
    async fn room_to_drain(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        if lb.cfg.min_in_rotation == 0 {
            return Ok(());
        }
        let me = self.server(node);
        let servers = self.names_and_vars();
        let started = Instant::now();
        let mut told = false;
        loop {
            let st = lb.driver.states(&servers, cancel).await?;
            if st.is_empty() {
                return Ok(()); // a command balancer without a `state` command cannot say
            }
            let others = servers
                .iter()
                .filter(|(s, _)| *s != me.name)
                .filter(|(s, _)| st.get(s).map(|x| x.in_rotation()).unwrap_or(false))
                .count();
            if others >= lb.cfg.min_in_rotation {
                return Ok(());
            }
            if started.elapsed() >= lb.cfg.drain_timeout {
                return Err(LbError::Refused(format!(
                    "draining {node} would leave {} in rotation, below min_in_rotation = {}; waited {}",
                    count(others, "node", "nodes"),
                    lb.cfg.min_in_rotation,
                    format_duration(started.elapsed())
                )));
            }
            if !told {
                told = true;
                self.line(
                    node,
                    "drain",
                    format!(
                        "waiting: only {} in rotation, min_in_rotation = {}",
                        count(others, "other node", "other nodes"),
                        lb.cfg.min_in_rotation
                    ),
                );
            }
            self.pause(Duration::from_secs(1), cancel).await?;
        }
    }

    /// A balancer that says nothing about a server it should know.
    fn unknown(&self, lb: &Configured, name: &str) -> Result<(), LbError> {
        if lb.driver.reports_every_server() {
            Err(LbError::Refused(format!(
                "{} does not know server {name}",
                lb.driver.describe()
            )))
        } else {
            Ok(()) // it cannot say: trust the command
        }
    }

    async fn drain_one(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        self.room_to_drain(lb, node, cancel).await?;
        let me = self.server(node);
        let mut state = lb
            .driver
            .set_and_read(&me.name, &me.vars, Admin::Drain, cancel)
            .await?;
        self.ledger.set_drained(node, true);
        // Let running sessions end (see the `lb` module: why one idle read after the drain is
        // enough for HAProxy).
        let started = Instant::now();
        let mut backoff = Backoff::default();
        let mut last_told = None;
        loop {
            let Some(s) = state else {
                return self.unknown(lb, &me.name);
            };
            // Believe the balancer, not the intention.
            if s.admin == Admin::Ready {
                return Err(LbError::Refused(format!(
                    "{} still reports {} as {} after the drain",
                    lb.driver.describe(),
                    me.name,
                    s.word
                )));
            }
            if s.idle() {
                self.line(
                    node,
                    "drain",
                    format!("{}: {} is {}", lb.driver.describe(), me.name, s.word),
                );
                return Ok(());
            }
            if started.elapsed() >= lb.cfg.drain_timeout {
                let msg = format!(
                    "{} session(s) still open on {node} after {}",
                    s.sessions + s.queued,
                    format_duration(lb.cfg.drain_timeout)
                );
                return match lb.cfg.drain_timeout_action {
                    DrainTimeoutAction::Proceed => {
                        self.line(
                            node,
                            "drain",
                            format!("{msg}; going on (drain_timeout_action = proceed)"),
                        );
                        Ok(())
                    }
                    DrainTimeoutAction::Fail => Err(LbError::Refused(format!(
                        "{msg} (drain_timeout_action = fail)"
                    ))),
                };
            }
            let open = s.sessions + s.queued;
            if last_told != Some(open) {
                last_told = Some(open);
                self.line(
                    node,
                    "drain",
                    format!("waiting for {open} session(s) to end"),
                );
            }
            self.pause(backoff.next(), cancel).await?;
            state = self.server_state(lb, node, cancel).await?;
        }
    }

    async fn enable_one(
        &self,
        lb: &Configured,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        let me = self.server(node);
        let mut state = lb
            .driver
            .set_and_read(&me.name, &me.vars, Admin::Ready, cancel)
            .await?;
        // Wait until the balancer itself says the node is up (its own health checks pass).
        let started = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            let Some(s) = state else {
                self.unknown(lb, &me.name)?;
                break;
            };
            if s.in_rotation() {
                self.line(
                    node,
                    "enable",
                    format!("{}: {} is {}", lb.driver.describe(), me.name, s.word),
                );
                break;
            }
            if started.elapsed() >= lb.cfg.timeout {
                return Err(LbError::Refused(format!(
                    "{} reports {} as {} {} after enabling it",
                    lb.driver.describe(),
                    me.name,
                    s.word,
                    format_duration(started.elapsed())
                )));
            }
            self.pause(backoff.next(), cancel).await?;
            state = self.server_state(lb, node, cancel).await?;
        }
        self.ledger.set_drained(node, false);
        Ok(())
    }

    /// Drain (`drain`) or enable a node on every balancer of the environment, as one step.
    pub async fn step(
        &self,
        node: &str,
        drain: bool,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        if self.lbs.is_empty() {
            return Ok(());
        }
        let phase = if drain { "drain" } else { "enable" };
        let shown = format!(
            "{} {} on {}",
            phase,
            self.server(node).name,
            self.lbs
                .iter()
                .map(|l| l.driver.describe())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let steps = &self.steps;
        steps
            .step(Some(node), phase, Some(shown), async {
                if !drain {
                    let hold = self
                        .lbs
                        .iter()
                        .map(|l| l.cfg.min_healthy)
                        .max()
                        .unwrap_or_default();
                    if !hold.is_zero() {
                        self.line(
                            node,
                            phase,
                            format!(
                                "healthy; holding it out for min_healthy = {}",
                                format_duration(hold)
                            ),
                        );
                        let _ = self.pause(hold, cancel).await;
                    }
                }
                loop {
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
                        Ok(()) => break,
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
                            let lost = StepError::BalancerLost {
                                error: LbError::Unreachable(m.clone()),
                                out_of_rotation: who.clone(),
                            };
                            if self.headless {
                                return Err(lost);
                            }
                            steps.ctl.step_ended();
                            let gate = steps
                                .ctl
                                .gate(
                                    format!("the balancer cannot be reached: {m}; {who}. Fix it, then promote to retry the {phase} of {node}; R rolls back, a aborts"),
                                    false,
                                )
                                .await;
                            steps.ctl.step_started();
                            if gate.is_err() {
                                return Err(lost);
                            }
                            steps
                                .em
                                .notice(Level::Info, format!("retrying the {phase} of {node}"));
                        }
                        Err(e) => return Err(StepError::Balancer(e)),
                    }
                }
                steps.em.emit(EventKind::Rotation {
                    node: node.to_string(),
                    in_rotation: !drain,
                });
                Ok(())
            })
            .await
    }

    /// Before a disruptive phase: every balancer must still have `node` out of rotation. One
    /// that forgot (it restarted and lost its runtime state) or cannot say is drained again,
    /// as a step of its own, and the log says why.
    pub(crate) async fn still_out(
        &self,
        node: &str,
        phase: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        if self.lbs.is_empty() || self.blue_green {
            return Ok(());
        }
        let mut forgot = Vec::new();
        for lb in &self.lbs {
            match self.server_state(lb, node, cancel).await {
                Ok(Some(s)) if s.admin == Admin::Ready => {
                    forgot.push(format!("{} has it {}", lb.driver.describe(), s.word))
                }
                Ok(_) => {}
                Err(e) => forgot.push(format!("{} cannot say ({e})", lb.driver.describe())),
            }
        }
        if forgot.is_empty() {
            return Ok(());
        }
        self.steps.em.notice(
            Level::Warn,
            format!(
                "{node} should be out of rotation before {phase}, but {} (did the balancer restart?); draining it again",
                forgot.join("; ")
            ),
        );
        self.step(node, true, cancel).await
    }

    /// Nodes this run took out of rotation and has not put back.
    pub(crate) fn out_of_rotation(&self) -> Vec<String> {
        if self.blue_green {
            return Vec::new(); // blue-green keeps a group out by design
        }
        self.ledger.out_of_rotation()
    }

    /// Preflight: every balancer answers and knows every node. Emits each node's measured
    /// rotation state. Err: one line per problem.
    pub async fn preflight(&self) -> Result<(), Vec<String>> {
        let never = CancellationToken::new();
        let servers = self.names_and_vars();
        let mut problems = Vec::new();
        for lb in &self.lbs {
            match lb.driver.states(&servers, &never).await {
                Err(e) => problems.push(format!("{}: {e}", lb.driver.describe())),
                Ok(st) if st.is_empty() => {}
                Ok(st) => {
                    for s in &self.servers {
                        match st.get(&s.name) {
                            Some(state) => self.steps.em.emit(EventKind::Rotation {
                                node: s.node.clone(),
                                in_rotation: state.in_rotation(),
                            }),
                            None => problems.push(format!(
                                "{}: {} has no server `{}` (set lb_server on the node if its name differs)",
                                s.node,
                                lb.driver.describe(),
                                s.name
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
    pub(crate) async fn rotation_now(&self) -> Result<Option<Vec<String>>, LbError> {
        let never = CancellationToken::new();
        let servers = self.names_and_vars();
        let mut serving: Option<Vec<String>> = None;
        for lb in &self.lbs {
            let st = lb.driver.states(&servers, &never).await?;
            if st.is_empty() {
                return Ok(None);
            }
            let here: Vec<String> = self
                .servers
                .iter()
                .filter(|s| st.get(&s.name).map(|x| x.in_rotation()).unwrap_or(false))
                .map(|s| s.node.clone())
                .collect();
            serving = Some(match serving {
                None => here,
                Some(prev) => prev.into_iter().filter(|n| here.contains(n)).collect(),
            });
        }
        Ok(serving)
    }

    /// Whether some balancer has this node out of rotation now (a balancer that cannot say, or
    /// cannot be read, counts as not knowing it out).
    pub(crate) async fn is_out(&self, node: &str) -> bool {
        let never = CancellationToken::new();
        let mut out = false;
        for lb in &self.lbs {
            if let Ok(Some(s)) = self.server_state(lb, node, &never).await {
                out |= !s.in_rotation();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_asks_again_at_once_then_doubles_up_to_a_quarter_second() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..12).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(waits, [0, 2, 4, 8, 16, 32, 64, 128, 250, 250, 250, 250]);
    }
}
