//! The leave policy: what happens when the operator or a signal asks a live run's front end (the
//! console or the headless line printer) to go away. The first signal (or the console's "pause
//! and leave") pauses the run at the next step boundary and leaves once it is paused, with the
//! lock held for `deckhand resume`; a second signal aborts; a running step that does not end
//! within `SIGNAL_GRACE` is aborted; a run that has ended is simply left.
//!
//! A small state machine over plain inputs ([`Input`]) answering plain outputs ([`Response`]):
//! it reads no clock (the caller passes `now` and asks for the [`Leave::deadline`]), sends
//! nothing, prints nothing and knows no terminal. The front ends carry out its answer and word its
//! [`Notice`]s on their own surface.

use std::time::{Duration, Instant};

use crate::event::{Control, Level};

/// How long leaving waits for the running step to end before it aborts the run; the console and
/// the headless line printer alike.
pub(crate) const SIGNAL_GRACE: Duration = Duration::from_secs(60);

/// What a front end tells the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// SIGINT, SIGTERM or SIGHUP arrived. `rolling_back`: a rollback is under way; the engine
    /// does not pause a rollback, so nothing is interrupted and it is left to finish.
    Signal {
        name: &'static str,
        rolling_back: bool,
    },
    /// The operator chose "pause and leave" in the console's quit dialog.
    PauseAndLeave { rolling_back: bool },
    /// The run is paused at a step boundary (its `Paused` event, or the console sees it paused).
    Paused,
    /// `SIGNAL_GRACE` has passed since leaving began (see [`Leave::deadline`]).
    GraceElapsed,
    /// The run has ended (its `Finished` event, or its event stream closed), or there is no
    /// run a signal could stop (a replay).
    Ended,
}

/// What the front end must say, worded by it ([`Notice::console`], [`Notice::line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A first signal: the run pauses at the next step boundary, then the front end leaves.
    Pausing { signal: &'static str },
    /// The same signal again: the run is aborted now.
    AbortingOnSignal { signal: &'static str },
    /// The running step did not end within `SIGNAL_GRACE`: it is aborted.
    GraceOver,
}

impl Notice {
    /// How serious it is (the console's flash level).
    pub fn level(self) -> Level {
        match self {
            Notice::Pausing { .. } => Level::Warn,
            Notice::AbortingOnSignal { .. } | Notice::GraceOver => Level::Error,
        }
    }

    /// The console's words: short enough for the flash line.
    pub fn console(self) -> String {
        match self {
            Notice::Pausing { signal } => {
                format!("{signal}: pausing at the next step boundary, then leaving (again: abort)")
            }
            Notice::AbortingOnSignal { signal } => format!("{signal} again: aborting the run"),
            Notice::GraceOver => "the running step did not end in time: aborting it".to_string(),
        }
    }

    /// The line printer's words, for standard error.
    pub fn line(self) -> String {
        match self {
            Notice::Pausing { signal } => format!(
                "{signal}: pausing at the next step boundary, then leaving (send it again to abort now)"
            ),
            Notice::AbortingOnSignal { signal } => format!(
                "{signal} again: aborting — running steps are killed, unfinished releases removed, the lock released"
            ),
            Notice::GraceOver => format!(
                "the running step did not end within {}; aborting it",
                crate::util::format_duration(SIGNAL_GRACE)
            ),
        }
    }
}

/// How the front end leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Going {
    /// The run is paused at a step boundary: nothing runs, every node is on a whole release and
    /// the lock stays held for `deckhand resume`.
    Paused,
    /// The run has ended (or there was none to stop).
    Ended,
}

/// The policy's answer to one input: at most one control, one notice, and whether to go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The control to send to the run.
    pub send: Option<Control>,
    /// What to tell the operator.
    pub say: Option<Notice>,
    /// Leave now, this way.
    pub go: Option<Going>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The run goes on; nobody asked to leave.
    Watching,
    /// The run has ended while nobody asked to leave: the next request leaves at once.
    Ended,
    /// Leaving began at this time: waiting for the run to pause (or end).
    Leaving { since: Instant },
    /// The run was aborted while leaving: waiting for it to end.
    Aborting,
    /// Gone: the answer said to leave.
    Gone,
}

/// The leave policy of one live run (see the module's header).
#[derive(Debug, Clone)]
pub struct Leave {
    state: State,
}

impl Default for Leave {
    fn default() -> Self {
        Leave::new()
    }
}

impl Leave {
    pub fn new() -> Leave {
        Leave {
            state: State::Watching,
        }
    }

    /// True once leaving was asked for (it may be waiting for the run to pause or end).
    pub fn leaving(&self) -> bool {
        matches!(
            self.state,
            State::Leaving { .. } | State::Aborting | State::Gone
        )
    }

    /// When the grace for the running step runs out, while leaving waits for a pause; feed
    /// [`Input::GraceElapsed`] then.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Leaving { since } => Some(since + SIGNAL_GRACE),
            _ => None,
        }
    }

    /// Take one input at time `now` and answer what to do.
    pub fn step(&mut self, input: Input, now: Instant) -> Response {
        let mut r = Response::default();
        match (self.state, input) {
            (State::Gone, _) => {}
            (State::Watching, Input::Signal { name, rolling_back }) => {
                self.state = State::Leaving { since: now };
                r.say = Some(Notice::Pausing { signal: name });
                if !rolling_back {
                    r.send = Some(Control::Interrupt {
                        reason: format!("{name} received"),
                    });
                }
            }
            (State::Watching, Input::PauseAndLeave { rolling_back }) => {
                self.state = State::Leaving { since: now };
                if !rolling_back {
                    r.send = Some(Control::Interrupt {
                        reason: "the operator left the console".to_string(),
                    });
                }
            }
            (State::Watching, Input::Ended) => self.state = State::Ended,
            (State::Watching, Input::Paused | Input::GraceElapsed) => {}
            (State::Ended, Input::Signal { .. } | Input::PauseAndLeave { .. }) => {
                r.go = Some(self.go(Going::Ended))
            }
            (State::Ended, Input::Paused | Input::GraceElapsed | Input::Ended) => {}
            (State::Leaving { .. }, Input::Signal { name, .. }) => {
                self.state = State::Aborting;
                r.say = Some(Notice::AbortingOnSignal { signal: name });
                r.send = Some(Control::Abort);
            }
            (State::Leaving { .. }, Input::PauseAndLeave { .. }) => {}
            (State::Leaving { .. }, Input::Paused) => r.go = Some(self.go(Going::Paused)),
            (State::Leaving { .. }, Input::GraceElapsed) => {
                self.state = State::Aborting;
                r.say = Some(Notice::GraceOver);
                r.send = Some(Control::Abort);
            }
            (State::Leaving { .. } | State::Aborting, Input::Ended) => {
                r.go = Some(self.go(Going::Ended))
            }
            // Aborted: only the run's end is waited for; a pause that was already on its way
            // does not leave an aborting run behind.
            (State::Aborting, _) => {}
        }
        r
    }

    fn go(&mut self, how: Going) -> Going {
        self.state = State::Gone;
        how
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(name: &'static str) -> Input {
        Input::Signal {
            name,
            rolling_back: false,
        }
    }

    fn interrupt(reason: &str) -> Option<Control> {
        Some(Control::Interrupt {
            reason: reason.to_string(),
        })
    }

    #[test]
    fn a_first_signal_pauses_and_leaves_once_paused() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        assert!(!leave.leaving());
        let r = leave.step(signal("SIGTERM"), t0);
        assert_eq!(r.send, interrupt("SIGTERM received"));
        assert_eq!(r.say, Some(Notice::Pausing { signal: "SIGTERM" }));
        assert_eq!(r.go, None, "the running step ends first");
        assert!(leave.leaving());
        assert_eq!(leave.deadline(), Some(t0 + SIGNAL_GRACE));
        let r = leave.step(Input::Paused, t0 + Duration::from_secs(3));
        assert_eq!(r.go, Some(Going::Paused));
        assert_eq!((r.send, r.say), (None, None));
    }

    #[test]
    fn a_second_signal_aborts_and_leaves_when_the_run_ends() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        leave.step(signal("SIGHUP"), t0);
        let r = leave.step(signal("SIGHUP"), t0);
        assert_eq!(r.send, Some(Control::Abort));
        assert_eq!(r.say, Some(Notice::AbortingOnSignal { signal: "SIGHUP" }));
        assert_eq!(r.go, None);
        assert_eq!(leave.deadline(), None, "no grace once aborted");
        // A third signal or a late pause changes nothing; the end of the run leaves.
        assert_eq!(leave.step(signal("SIGHUP"), t0), Response::default());
        assert_eq!(leave.step(Input::Paused, t0), Response::default());
        assert_eq!(leave.step(Input::Ended, t0).go, Some(Going::Ended));
    }

    #[test]
    fn a_step_that_outlasts_the_grace_is_aborted_once() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        leave.step(signal("SIGINT"), t0);
        let r = leave.step(Input::GraceElapsed, t0 + SIGNAL_GRACE);
        assert_eq!(r.send, Some(Control::Abort));
        assert_eq!(r.say, Some(Notice::GraceOver));
        assert_eq!(leave.step(Input::GraceElapsed, t0), Response::default());
        assert_eq!(leave.step(signal("SIGINT"), t0), Response::default());
        assert_eq!(leave.step(Input::Ended, t0).go, Some(Going::Ended));
    }

    #[test]
    fn pause_and_leave_sends_the_operators_reason_and_a_signal_then_aborts() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        let r = leave.step(
            Input::PauseAndLeave {
                rolling_back: false,
            },
            t0,
        );
        assert_eq!(r.send, interrupt("the operator left the console"));
        assert_eq!((r.say, r.go), (None, None));
        let again = leave.step(
            Input::PauseAndLeave {
                rolling_back: false,
            },
            t0,
        );
        assert_eq!(
            again,
            Response::default(),
            "asking twice starts nothing new"
        );
        assert_eq!(leave.step(signal("SIGTERM"), t0).send, Some(Control::Abort));
    }

    #[test]
    fn a_rollback_under_way_is_not_interrupted_but_left_to_finish() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        let r = leave.step(
            Input::Signal {
                name: "SIGTERM",
                rolling_back: true,
            },
            t0,
        );
        assert_eq!(r.send, None);
        assert_eq!(r.say, Some(Notice::Pausing { signal: "SIGTERM" }));
        assert!(leave.leaving());
        assert_eq!(leave.step(Input::Ended, t0).go, Some(Going::Ended));
    }

    #[test]
    fn a_run_that_has_ended_is_left_at_once() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        assert_eq!(leave.step(Input::Ended, t0), Response::default());
        assert!(!leave.leaving(), "an ended run is not left by itself");
        let r = leave.step(signal("SIGTERM"), t0);
        assert_eq!(r.go, Some(Going::Ended));
        assert_eq!(
            (r.send, r.say),
            (None, None),
            "nothing to stop, nothing to say"
        );
    }

    #[test]
    fn watching_ignores_pauses_and_grace() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        assert_eq!(leave.step(Input::Paused, t0), Response::default());
        assert_eq!(leave.step(Input::GraceElapsed, t0), Response::default());
        assert!(!leave.leaving());
        assert_eq!(leave.deadline(), None);
    }

    #[test]
    fn nothing_is_answered_once_gone() {
        let t0 = Instant::now();
        let mut leave = Leave::new();
        leave.step(signal("SIGTERM"), t0);
        assert_eq!(leave.step(Input::Paused, t0).go, Some(Going::Paused));
        for input in [signal("SIGTERM"), Input::GraceElapsed, Input::Ended] {
            assert_eq!(leave.step(input, t0), Response::default());
        }
    }

    #[test]
    fn notices_name_the_signal_and_the_grace() {
        let n = Notice::Pausing { signal: "SIGHUP" };
        assert!(n.console().starts_with("SIGHUP: pausing"));
        assert!(n.line().contains("send it again to abort now"));
        assert_eq!(n.level(), Level::Warn);
        assert!(
            Notice::GraceOver
                .line()
                .contains("did not end within 1m00s"),
            "{}",
            Notice::GraceOver.line()
        );
        assert_eq!(Notice::GraceOver.level(), Level::Error);
    }
}
