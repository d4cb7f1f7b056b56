//! The run's control state: what the operator asked for (pause, promote, abort, rollback) and
//! how node tasks wait on it at step boundaries.
//!
//! Pause never interrupts a running step: steps check [`Ctl::boundary`] before they start, and
//! the `Paused` event is emitted only once the last running step has ended. Abort and rollback
//! cancel the forward token, which kills running steps through their transports.
//!
//! Step mode: while paused, [`Control::Step`] lets every task waiting at a boundary (each node in
//! flight, or the run between batches) start exactly its next step; the run is still paused, and
//! `Paused` is announced again once those steps ended. A run started with `--step` pauses at its
//! first boundary, before any step.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::emit::Emitter;
use super::timing::Timing;
use crate::event::{Control, EventKind, Level};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtlState {
    pub paused: bool,
    pub abort: bool,
    pub rollback: bool,
    pub gate_open: bool,
    pub promotions: u64,
    /// Manual checklist items the operator confirmed.
    pub confirmed: Vec<String>,
    /// The monitoring window is running (a promote ends it early).
    pub monitoring: bool,
    pub end_monitoring: bool,
    /// Why forward work stopped, in words for the operator.
    pub reason: Option<String>,
    /// Step mode: opened by [`Control::Step`] while paused, closed when the first step started
    /// in it ends. While open, boundaries let tasks through although the run is paused: the
    /// run between batches passes (no step of its own), each node in flight starts its next
    /// step, and a node whose step ended finds the window closed at its next boundary.
    pub step_window: bool,
}

/// Why forward work stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Abort,
    Rollback,
}

pub struct Ctl {
    state: watch::Sender<CtlState>,
    active: Mutex<(usize, bool)>,
    emitter: Arc<Emitter>,
    timing: Arc<Timing>,
    /// Since when the run has been paused with nothing running (for the time report).
    paused_since: Mutex<Option<std::time::Instant>>,
    /// Step mode from the start: pause at the first boundary (`deploy --step`).
    pause_first: std::sync::atomic::AtomicBool,
    /// Cancelled on abort or rollback: kills forward steps.
    pub forward: CancellationToken,
    /// Cancelled on abort only: kills everything, rollback steps included.
    pub all: CancellationToken,
}

impl Ctl {
    pub fn new(emitter: Arc<Emitter>, timing: Arc<Timing>) -> Arc<Self> {
        let all = CancellationToken::new();
        Arc::new(Ctl {
            state: watch::channel(CtlState::default()).0,
            active: Mutex::new((0, false)),
            emitter,
            timing,
            paused_since: Mutex::new(None),
            pause_first: std::sync::atomic::AtomicBool::new(false),
            forward: all.child_token(),
            all,
        })
    }

    /// Step mode from the start: the run pauses before its first step.
    pub(crate) fn start_paused(&self) {
        self.pause_first
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn set_monitoring(&self, on: bool) {
        self.state.send_modify(|s| s.monitoring = on);
    }

    /// Wait until `deadline`, or until the operator ends monitoring, aborts or rolls back.
    pub(crate) async fn monitor_wait(&self, deadline: tokio::time::Instant) -> Result<bool, Stop> {
        Ok(self
            .wait_until(Some(deadline), |s| s.end_monitoring.then_some(()))
            .await?
            .is_some())
    }

    /// Wait until `done` answers (Some), or `deadline` passes (None); Err when the run must stop.
    async fn wait_until<T>(
        &self,
        deadline: Option<tokio::time::Instant>,
        done: impl Fn(&CtlState) -> Option<T>,
    ) -> Result<Option<T>, Stop> {
        let mut rx = self.state.subscribe();
        loop {
            {
                let s = rx.borrow_and_update();
                if s.abort {
                    return Err(Stop::Abort);
                }
                if s.rollback {
                    return Err(Stop::Rollback);
                }
                if let Some(t) = done(&s) {
                    return Ok(Some(t));
                }
            }
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(Stop::Abort) },
                _ = timer => return Ok(None),
            }
        }
    }

    pub fn snapshot(&self) -> CtlState {
        self.state.borrow().clone()
    }

    pub(crate) fn stop_reason(&self) -> Option<Stop> {
        let s = self.snapshot();
        if s.abort {
            Some(Stop::Abort)
        } else if s.rollback {
            Some(Stop::Rollback)
        } else {
            None
        }
    }

    /// Apply one control from the operator.
    pub fn apply(&self, c: Control) {
        let before = self.snapshot();
        match c {
            Control::Pause if before.abort || before.rollback => {}
            Control::Pause if !before.paused => self.begin_pause(),
            Control::Resume if before.paused => {
                if let Ok(mut a) = self.active.lock() {
                    a.1 = false;
                }
                self.state.send_modify(|s| s.paused = false);
                if let Some(since) = self.paused_since.lock().ok().and_then(|mut p| p.take()) {
                    self.timing.waited(since, std::time::Instant::now());
                }
                self.emitter.emit(EventKind::Resumed);
            }
            Control::Step if before.paused && !before.abort && !before.rollback => {
                if let Ok(mut a) = self.active.lock() {
                    a.1 = false;
                }
                if let Some(since) = self.paused_since.lock().ok().and_then(|mut p| p.take()) {
                    self.timing.waited(since, std::time::Instant::now());
                }
                self.emitter.emit(EventKind::Stepping);
                self.state.send_modify(|s| s.step_window = true);
            }
            Control::Step => self.emitter.notice(
                Level::Warn,
                "step runs the next step of each node while paused; pause first (p)",
            ),
            Control::Promote if before.monitoring && !before.gate_open => {
                self.state.send_modify(|s| s.end_monitoring = true);
                self.emitter
                    .notice(Level::Info, "the operator ended the monitoring window");
            }
            Control::Interrupt { reason } => {
                self.emitter.notice(
                    Level::Warn,
                    format!("{reason}: pausing at the next step boundary; the lock stays held so that `deckhand resume` can continue or roll back"),
                );
                if !before.paused && !before.abort && !before.rollback {
                    self.begin_pause();
                }
            }
            Control::Confirm { check } if !before.confirmed.contains(&check) => {
                self.state.send_modify(|s| s.confirmed.push(check.clone()));
                self.emitter.emit(EventKind::Check {
                    name: check,
                    node: None,
                    status: crate::event::CheckStatus::Pass,
                    value: Some("confirmed by the operator".into()),
                });
            }
            Control::Promote if before.gate_open => {
                self.state.send_modify(|s| {
                    s.gate_open = false;
                    s.promotions += 1;
                });
            }
            Control::Promote => self
                .emitter
                .notice(Level::Warn, "nothing to promote: no gate is waiting"),
            Control::Abort => self.request_abort("the operator aborted"),
            Control::Rollback if !before.rollback && !before.abort => {
                self.request_rollback("the operator asked for a rollback")
            }
            _ => {}
        }
    }

    /// Pause at the next step boundary: `Pausing` now, `Paused` once no step is running.
    fn begin_pause(&self) {
        self.state.send_modify(|s| s.paused = true);
        self.emitter.emit(EventKind::Pausing);
        self.announce_paused_if_idle();
    }

    /// Stop forward work and ask for a rollback (by the operator or by `on_failure`).
    pub(crate) fn request_rollback(&self, reason: &str) {
        self.state.send_modify(|s| {
            s.rollback = true;
            s.paused = false;
            s.reason.get_or_insert_with(|| reason.to_string());
        });
        self.forward.cancel();
    }

    /// Stop everything (by the operator or by `on_failure`); a second abort changes nothing.
    pub(crate) fn request_abort(&self, reason: &str) {
        if !self.snapshot().abort {
            self.state.send_modify(|s| s.abort = true);
            self.emitter.emit(EventKind::Aborting {
                reason: reason.into(),
            });
            self.all.cancel();
        }
    }

    /// Wait here until the run may start a new step (not paused, or a step was asked for since
    /// this task began waiting). Err when forward work must stop.
    pub async fn boundary(&self) -> Result<(), Stop> {
        if self
            .pause_first
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.begin_pause();
        }
        let s = self.snapshot();
        if s.paused && !s.step_window {
            // Nothing may be running any more (a step mode pass just ended): say paused.
            self.announce_paused_if_idle();
        }
        self.wait_until(None, |s| (!s.paused || s.step_window).then_some(()))
            .await
            .map(|_| ())
    }

    /// Open a gate and wait for a promote. Err when the operator chose abort or rollback.
    pub async fn gate(&self, reason: String, auto_promote: bool) -> Result<(), Stop> {
        self.gate_for(reason, auto_promote, None).await
    }

    /// A gate that also passes by itself after `wait` (a canary's timed pause).
    pub(crate) async fn gate_for(
        &self,
        reason: String,
        auto_promote: bool,
        wait: Option<std::time::Duration>,
    ) -> Result<(), Stop> {
        let until_ms = wait.map(|w| chrono::Utc::now().timestamp_millis() + w.as_millis() as i64);
        self.emitter.emit(EventKind::Gate { reason, until_ms });
        if auto_promote {
            self.emitter.emit(EventKind::Promoted);
            return Ok(());
        }
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let start = self.snapshot().promotions;
        let opened = std::time::Instant::now();
        self.state.send_modify(|s| s.gate_open = true);
        let waited = self
            .wait_until(deadline, |s| (s.promotions > start).then_some(()))
            .await;
        self.state.send_modify(|s| s.gate_open = false);
        self.timing.waited(opened, std::time::Instant::now());
        if waited?.is_none() {
            self.emitter
                .notice(Level::Info, "the pause is over; going on");
        }
        self.emitter.emit(EventKind::Promoted);
        Ok(())
    }

    pub fn step_started(&self) {
        if let Ok(mut a) = self.active.lock() {
            a.0 += 1;
        }
    }

    pub(crate) fn step_ended(&self) {
        if let Ok(mut a) = self.active.lock() {
            a.0 = a.0.saturating_sub(1);
        }
        if self.snapshot().step_window {
            self.state.send_modify(|s| s.step_window = false);
        }
        self.announce_paused_if_idle();
    }

    fn announce_paused_if_idle(&self) {
        let paused = self.snapshot().paused;
        let announce = match self.active.lock() {
            Ok(mut a) if paused && a.0 == 0 && !a.1 => {
                a.1 = true;
                true
            }
            _ => false,
        };
        if announce {
            if let Ok(mut p) = self.paused_since.lock() {
                *p = Some(std::time::Instant::now());
            }
            self.emitter.emit(EventKind::Paused);
        }
    }

    /// Feed controls from the channel into this state until the channel closes.
    pub fn listen(
        self: &Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Control>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                me.apply(c);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ctl() -> (Arc<Ctl>, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let em = Arc::new(Emitter::new(
            tx,
            crate::secrets::Secrets::default(),
            None,
            None,
        ));
        (Ctl::new(em, Arc::new(Timing::new())), rx)
    }

    fn kinds(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(format!("{:?}", e.kind));
        }
        out
    }

    /// Two nodes in flight, each taking steps in a loop at its boundaries.
    fn node(c: &Arc<Ctl>, passed: &Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
        let (c, passed) = (c.clone(), passed.clone());
        tokio::spawn(async move {
            while c.boundary().await.is_ok() {
                c.step_started();
                passed.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                c.step_ended();
            }
        })
    }

    #[tokio::test]
    async fn step_mode_starts_paused_and_each_step_lets_every_node_run_one_step() {
        let (c, mut rx) = ctl();
        c.start_paused();
        let passed = Arc::new(AtomicUsize::new(0));
        let tasks = [node(&c, &passed), node(&c, &passed)];
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            passed.load(Ordering::SeqCst),
            0,
            "paused before the first step"
        );
        assert_eq!(kinds(&mut rx), vec!["Pausing", "Paused"]);
        for round in 1..=3 {
            c.apply(Control::Step);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(
                passed.load(Ordering::SeqCst),
                2 * round,
                "one step per node per key"
            );
            assert_eq!(kinds(&mut rx), vec!["Stepping", "Paused"]);
        }
        // Resume: the nodes run freely again.
        c.apply(Control::Resume);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(passed.load(Ordering::SeqCst) > 20);
        c.apply(Control::Abort);
        for t in tasks {
            let _ = t.await;
        }
    }

    #[tokio::test]
    async fn the_first_step_between_batches_starts_the_batch_and_its_first_steps() {
        let (c, mut rx) = ctl();
        c.start_paused();
        let passed = Arc::new(AtomicUsize::new(0));
        // The run between batches waits at its boundary, then its nodes take their steps.
        let run = {
            let (c, passed) = (c.clone(), passed.clone());
            tokio::spawn(async move {
                if c.boundary().await.is_ok() {
                    let a = node(&c, &passed);
                    let b = node(&c, &passed);
                    let _ = a.await;
                    let _ = b.await;
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(kinds(&mut rx), vec!["Pausing", "Paused"]);
        c.apply(Control::Step);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(passed.load(Ordering::SeqCst), 2, "one step on each node");
        assert_eq!(kinds(&mut rx), vec!["Stepping", "Paused"]);
        c.apply(Control::Abort);
        let _ = run.await;
    }

    #[tokio::test]
    async fn a_step_while_running_changes_nothing_but_says_why() {
        let (c, mut rx) = ctl();
        c.apply(Control::Step);
        assert!(!c.snapshot().step_window);
        let said = kinds(&mut rx);
        assert!(said[0].contains("pause first"), "{said:?}");
    }
}
