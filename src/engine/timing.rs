//! Where the time went: every step's span, every wait for the operator or the checklist, and
//! when the locks were held, recorded as the run goes; at the end, one [`TimeReport`] that says
//! at a glance whether deckhand or the steps took the time.
//!
//! The steps' time is the time during which at least one step was running (the union of their
//! spans: nodes of a batch run side by side, so this is the work's critical path through the
//! run). Waiting (gates, pauses, the checklist's windows) is the operator's and the checklist's
//! time. Whatever is left is deckhand's own: preflight, locks, the gaps between steps.
//!
//! Part of every remote step is not the step's own work: the request's way to the node, starting
//! the script there and the answer's way back. The transport knows what that costs on its link
//! beyond starting the script in a shell of its own, as a step run by hand would
//! (`Transport::floor`),
//! and each script run inside a step records that much as a *link* interval of its node. A
//! step's own time is its span minus its node's link intervals; the link's share goes to
//! deckhand's time and is also given on its own, so a slow link or a jump host shows as such and
//! not as slow steps.

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

/// Time spent on the way to a node and back inside a step (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub node: Option<String>,
    pub start: Instant,
    pub end: Instant,
}

/// A script run inside a step on a node (None: this machine): when it started and how long it
/// took. Its share on the link is known only when the report is made.
#[derive(Debug, Clone)]
struct Script {
    node: Option<String>,
    start: Instant,
    took: std::time::Duration,
}

#[derive(Default)]
struct Inner {
    steps: Vec<Span>,
    scripts: Vec<Script>,
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

    /// A script of a step on `node` started at `start` and took `took`.
    pub fn script(&self, node: Option<&str>, start: Instant, took: std::time::Duration) {
        self.inner().scripts.push(Script {
            node: node.map(String::from),
            start,
            took,
        });
    }

    pub fn waited(&self, start: Instant, end: Instant) {
        self.inner().waits.push((start, end));
    }

    /// The locks are held on every node: preflight and locking are over.
    pub fn locked(&self) {
        self.inner().locked.get_or_insert_with(Instant::now);
    }

    /// The report as of now; `floor` says what a step costs on a node's link (its transport's
    /// [`crate::transport::Transport::floor`] as of now: measured late, when the node's share
    /// of the run is done and the machine quieter).
    pub fn report(&self, floor: &dyn Fn(Option<&str>) -> std::time::Duration) -> TimeReport {
        let g = self.inner();
        let links: Vec<Link> = g
            .scripts
            .iter()
            .filter_map(|s| {
                let share = floor(s.node.as_deref()).min(s.took);
                (!share.is_zero()).then(|| Link {
                    node: s.node.clone(),
                    start: s.start,
                    end: s.start + share,
                })
            })
            .collect();
        report(
            self.started,
            Instant::now(),
            &g.steps,
            &links,
            &g.waits,
            g.locked,
        )
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

/// `span` without the parts that `holes` cover.
fn subtract(span: (Instant, Instant), holes: &[(Instant, Instant)]) -> Vec<(Instant, Instant)> {
    let mut holes: Vec<_> = holes
        .iter()
        .map(|&(s, e)| (s.max(span.0), e.min(span.1)))
        .filter(|(s, e)| e > s)
        .collect();
    holes.sort_by_key(|h| h.0);
    let mut pieces = Vec::new();
    let mut from = span.0;
    for (s, e) in holes {
        if s > from {
            pieces.push((from, s));
        }
        from = from.max(e);
    }
    if span.1 > from {
        pieces.push((from, span.1));
    }
    pieces
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
    links: &[Link],
    waits: &[(Instant, Instant)],
    locked: Option<Instant>,
) -> TimeReport {
    let wall_ms = (now - started).as_millis() as u64;
    // Each step without its node's time on the link.
    let own: Vec<Vec<(Instant, Instant)>> = steps
        .iter()
        .map(|s| {
            let holes: Vec<_> = links
                .iter()
                .filter(|l| l.node == s.node)
                .map(|l| (l.start, l.end))
                .collect();
            subtract((s.start, s.end), &holes)
        })
        .collect();
    let spans_ms = union_ms(steps.iter().map(|s| (s.start, s.end)).collect());
    let steps_ms = union_ms(own.iter().flatten().copied().collect());
    // Steps never run while the run waits at a gate or is paused; a step still running when a
    // pause was asked for counts as a step.
    let waiting_ms = union_ms(waits.to_vec());
    let mut phases = Vec::new();
    let mut nodes = Vec::new();
    for (s, pieces) in steps.iter().zip(&own) {
        let ms = pieces
            .iter()
            .map(|(a, b)| (*b - *a).as_millis() as u64)
            .sum();
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
        link_ms: spans_ms.saturating_sub(steps_ms),
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
        let r = report(t0, at(t0, 2000), &steps, &[], &waits, Some(at(t0, 100)));
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
        let r = report(t0, at(t0, 300), &[], &[], &[], None);
        assert_eq!(r.preflight_ms, 300);
        assert_eq!(r.overhead_ms, 300);
        assert_eq!(r.steps_ms, 0);
    }

    fn link(t0: Instant, node: &str, from: u64, to: u64) -> Link {
        Link {
            node: Some(node.into()),
            start: at(t0, from),
            end: at(t0, to),
        }
    }

    #[test]
    fn the_link_s_share_of_each_step_is_deckhands() {
        let t0 = Instant::now();
        // One node at a time: web-1's two steps each spent 20 ms on the link.
        let steps = [
            span(t0, "web-1", "build", 0, 100),
            span(t0, "web-1", "switch", 100, 130),
        ];
        let links = [link(t0, "web-1", 0, 20), link(t0, "web-1", 100, 120)];
        let r = report(t0, at(t0, 200), &steps, &links, &[], Some(at(t0, 0)));
        assert_eq!(r.steps_ms, 80 + 10);
        assert_eq!(r.link_ms, 40);
        assert_eq!(r.overhead_ms, 200 - 90);
        assert_eq!(r.slowest_phases[0].ms, 80);
        assert_eq!(r.slowest_phases[1].ms, 10);
    }

    #[test]
    fn one_node_s_link_never_hides_another_node_s_work() {
        let t0 = Instant::now();
        // Side by side: web-2 works while web-1's request is on its way; a link interval of
        // another node or outside any step takes nothing away.
        let steps = [
            span(t0, "web-1", "build", 0, 100),
            span(t0, "web-2", "build", 0, 100),
        ];
        let links = [
            link(t0, "web-1", 0, 30),
            link(t0, "web-2", 50, 60),
            link(t0, "web-3", 0, 100),
            link(t0, "web-1", 150, 190),
        ];
        let r = report(t0, at(t0, 200), &steps, &links, &[], Some(at(t0, 0)));
        assert_eq!(r.steps_ms, 100);
        assert_eq!(r.link_ms, 0);
        assert_eq!(r.slowest_nodes[0].name, "web-2");
        assert_eq!(r.slowest_nodes[0].ms, 90);
        assert_eq!(r.slowest_nodes[1].ms, 70);
    }

    #[test]
    fn a_link_longer_than_its_step_leaves_nothing_of_it() {
        let t0 = Instant::now();
        let steps = [span(t0, "web-1", "version", 10, 15)];
        let links = [link(t0, "web-1", 10, 40)];
        let r = report(t0, at(t0, 50), &steps, &links, &[], None);
        assert_eq!(r.steps_ms, 0);
        assert_eq!(r.link_ms, 5);
        assert_eq!(r.slowest_phases[0].ms, 0);
    }
}
