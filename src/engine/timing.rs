//! Where the time went: every step's span, every wait for the operator or the checklist, and
//! when the locks were held, recorded as the run goes; at the end, one [`TimeReport`] that says
//! at a glance whether deckhand or the steps took the time.
//!
//! The steps' time is the time during which at least one step was running (the union of their
//! spans: nodes of a batch run side by side, so this is the work's critical path through the
//! run). Waiting (gates, pauses, the checklist's windows) is the operator's and the checklist's
//! time. Whatever is left is deckhand's own: preflight, locks, the gaps between steps.

use std::sync::Mutex;
use std::time::Instant;

use crate::event::{Slow, TimeReport};

/// How many of the slowest phases and nodes a report names.
const SLOWEST: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub node: Option<String>,
    pub phase: String,
    pub start: Instant,
    pub end: Instant,
}

/// The run's clock, shared by the parts that know when things start and end.
pub(crate) struct Timing {
    started: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    steps: Vec<Span>,
    waits: Vec<(Instant, Instant)>,
    locked: Option<Instant>,
}

impl Timing {
    pub fn new() -> Self {
        Timing {
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn step(&self, span: Span) {
        self.inner().steps.push(span);
    }

    pub fn waited(&self, start: Instant, end: Instant) {
        self.inner().waits.push((start, end));
    }

    /// The locks are held on every node: preflight and locking are over.
    pub fn locked(&self) {
        self.inner().locked.get_or_insert_with(Instant::now);
    }

    /// The report as of now.
    pub fn report(&self) -> TimeReport {
        let g = self.inner();
        report(self.started, Instant::now(), &g.steps, &g.waits, g.locked)
    }
}

/// Total length of the union of `spans` (overlaps counted once).
fn union_ms(mut spans: Vec<(Instant, Instant)>) -> u64 {
    spans.retain(|(s, e)| e > s);
    spans.sort_by_key(|(s, _)| *s);
    let mut total = std::time::Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (s, e) in spans {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    total.as_millis() as u64
}

fn slowest(mut totals: Vec<(String, u64)>) -> Vec<Slow> {
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    totals
        .into_iter()
        .take(SLOWEST)
        .map(|(name, ms)| Slow { name, ms })
        .collect()
}

fn add(totals: &mut Vec<(String, u64)>, name: &str, ms: u64) {
    match totals.iter_mut().find(|(n, _)| n == name) {
        Some((_, t)) => *t += ms,
        None => totals.push((name.to_string(), ms)),
    }
}

/// The report of a run that started at `started` and ends at `now`.
pub(crate) fn report(
    started: Instant,
    now: Instant,
    steps: &[Span],
    waits: &[(Instant, Instant)],
    locked: Option<Instant>,
) -> TimeReport {
    let wall_ms = (now - started).as_millis() as u64;
    let steps_ms = union_ms(steps.iter().map(|s| (s.start, s.end)).collect());
    // Steps never run while the run waits at a gate or is paused; a step still running when a
    // pause was asked for counts as a step.
    let waiting_ms = union_ms(waits.to_vec());
    let mut phases = Vec::new();
    let mut nodes = Vec::new();
    for s in steps {
        let ms = (s.end - s.start).as_millis() as u64;
        add(&mut phases, &s.phase, ms);
        add(&mut nodes, s.node.as_deref().unwrap_or("this machine"), ms);
    }
    TimeReport {
        wall_ms,
        preflight_ms: locked
            .map(|l| (l - started).as_millis() as u64)
            .unwrap_or(wall_ms),
        steps_ms,
        waiting_ms,
        overhead_ms: wall_ms.saturating_sub(steps_ms + waiting_ms),
        slowest_phases: slowest(phases),
        slowest_nodes: slowest(nodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn span(t0: Instant, node: &str, phase: &str, from: u64, to: u64) -> Span {
        Span {
            node: Some(node.into()),
            phase: phase.into(),
            start: at(t0, from),
            end: at(t0, to),
        }
    }

    #[test]
    fn side_by_side_steps_count_once_and_the_rest_is_deckhands() {
        let t0 = Instant::now();
        // Preflight and locks until 100 ms; a batch of two nodes side by side; a gate; a
        // second batch.
        let steps = [
            span(t0, "web-1", "build", 100, 400),
            span(t0, "web-2", "build", 110, 500),
            span(t0, "web-1", "switch", 400, 420),
            span(t0, "web-3", "build", 1600, 1900),
        ];
        let waits = [(at(t0, 520), at(t0, 1500))];
        let r = report(t0, at(t0, 2000), &steps, &waits, Some(at(t0, 100)));
        assert_eq!(r.wall_ms, 2000);
        assert_eq!(r.preflight_ms, 100);
        assert_eq!(r.steps_ms, 400 + 300);
        assert_eq!(r.waiting_ms, 980);
        assert_eq!(r.overhead_ms, 2000 - 700 - 980);
        assert_eq!(
            r.slowest_phases,
            vec![
                Slow {
                    name: "build".into(),
                    ms: 990
                },
                Slow {
                    name: "switch".into(),
                    ms: 20
                }
            ]
        );
        assert_eq!(r.slowest_nodes[0].name, "web-2");
        assert_eq!(r.slowest_nodes.len(), 3);
    }

    #[test]
    fn a_run_that_never_locked_spent_its_whole_time_in_preflight() {
        let t0 = Instant::now();
        let r = report(t0, at(t0, 300), &[], &[], None);
        assert_eq!(r.preflight_ms, 300);
        assert_eq!(r.overhead_ms, 300);
        assert_eq!(r.steps_ms, 0);
    }
}
