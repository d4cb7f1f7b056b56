//! The console: a live terminal screen over one deployment's event stream, with every decision
//! one key away. [`run_until_left`] drives a live run; [`replay`] plays a recorded journal
//! through the very same reducer and screen.
//!
//! The console only consumes [`Event`]s and sends [`Control`]s; it never touches the network or
//! a node. It owns the terminal while it runs and gives it back as it found it on every way
//! out: a normal quit, an error, a panic, SIGTERM or SIGHUP.
//!
//! Rendering is event-driven: a frame is drawn after engine events or a key, bursts of events
//! are folded into one frame (at most one every `FRAME_MS`), and a slow tick moves spinners
//! and the clock only while something is running.
//!
//! Inside, data flows one way: events go into the run state (`model`, only through
//! `App::apply`); a frame is drawn from `&App` (`view` and the panes) and hands back what it laid
//! out (`model::Drawn`); a key is turned by `input` (reading the table in `keys` and that layout)
//! into screen state and effects, which this loop carries out. Leaving follows `crate::leave`.

pub mod app; // App: the run state and the screen state around it
pub(crate) mod checklist; // the checklist pane
pub(crate) mod dialog; // the box every dialog is drawn in
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures; // test scenes (the `fixtures` feature): snapshot tests, screenshots, benchmark
pub(crate) mod grid; // the balancer line and the node grid
pub(crate) mod help; // the `?` help and the footer
pub mod home; // the home screen: every environment, the selected one's nodes and history, actions
pub mod input; // key presses: key -> action -> screen state and effects
pub mod keys; // the one table of key bindings
pub mod log; // the log pane
pub mod model; // the run state: the reducer over engine events
pub(crate) mod phases; // the phases pane and the output view
pub mod theme; // colours and glyphs
pub mod view; // one frame: draws from &App, returns what keys need

use std::io::{self, Stdout};
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::engine::RunHandle;
use crate::event::{Control, Event, Outcome};
use crate::leave::{self, Going, Leave};

use app::{App, FlashLevel, Mode};
use input::Effect;
use model::Drawn;
use theme::{Glyphs, Theme};

/// Shortest time between two frames: bursts of events inside it become one frame.
pub(crate) const FRAME_MS: u64 = 16;
/// Spinner speed while a step runs.
const SPIN_MS: u64 = 100;
/// Clock tick while a run is live but nothing spins (paused, waiting at a gate).
const CLOCK_MS: u64 = 1000;
/// Longest real wait between two replayed events at speed 1 (quiet stretches are shortened).
const REPLAY_MAX_GAP_MS: u64 = 1500;
/// How the console looks.
#[derive(Debug, Clone, Default)]
pub struct UiOptions {
    /// `--theme NAME|FILE`.
    pub theme: Option<String>,
    /// The inventory's `theme` key (used when there is no `--theme` and no `NO_COLOR`).
    pub inventory_theme: Option<String>,
    /// `--ascii`: draw with ASCII only.
    pub ascii: bool,
}

impl UiOptions {
    /// The starting theme and glyphs for these options and this environment.
    pub(crate) fn resolve(&self) -> anyhow::Result<(Theme, Glyphs)> {
        let theme = Theme::choose(
            self.theme.as_deref(),
            self.inventory_theme.as_deref(),
            theme::no_color_requested(),
        )?;
        let ascii = self.ascii || !Glyphs::unicode_ok();
        Ok((theme, Glyphs::new(ascii)))
    }
}

/// How the console was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The run finished (or ended) with this outcome.
    Finished(Outcome),
    /// The operator left (or a signal came) while the run was paused at a step boundary: nothing
    /// runs, every node is on a whole release, and the lock stays held for `deckhand resume`.
    LeftPaused,
}

/// Where a run's console was opened from, which decides how it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Opened {
    /// A command (`deploy`, `rollback`, ...): `q` leaves.
    #[default]
    Command,
    /// The home screen: at the run's end `esc` goes back there.
    Home,
}

/// How a run's console was left: how the run ended, and whether the operator asked for the
/// home screen (`esc` after the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    pub ending: Ending,
    pub home: bool,
}

/// Drive a live deployment from the terminal until the operator leaves, and say how it ended:
/// the run's outcome, or [`Ending::LeftPaused`] when the console was left while the run paused.
pub async fn run_until_left(handle: RunHandle, opts: UiOptions) -> anyhow::Result<Ending> {
    Ok(run_console(handle, opts, Opened::Command).await?.ending)
}

/// [`run_until_left`], opened from `from`: from the home screen, `esc` at the end goes back.
pub async fn run_console(handle: RunHandle, opts: UiOptions, from: Opened) -> anyhow::Result<Left> {
    let RunHandle {
        events,
        controls,
        done,
    } = handle;
    let source = Source::Live {
        events,
        controls: controls.clone(),
        closed: false,
    };
    let started = opts.resolve().and_then(|(theme, glyphs)| {
        let mut app = App::new(theme, glyphs);
        app.from_home = from == Opened::Home;
        Console::start(app, source)
    });
    let mut console = match started {
        Ok(c) => c,
        Err(e) => {
            // Nobody would watch the run: stop it cleanly before reporting why.
            let _ = controls.send(Control::Abort);
            let _ = tokio::time::timeout(Duration::from_secs(60), done).await;
            return Err(e.context("the console could not start, so the deployment was aborted"));
        }
    };
    let result = console.run_loop().await;
    let left_paused = console.left_paused;
    let home = console.home;
    let app = console.finish();
    if left_paused && result.is_ok() {
        // The engine waits, paused, holding the lock; the process may end.
        return Ok(Left {
            ending: Ending::LeftPaused,
            home: false,
        });
    }
    let outcome_seen = app.run().outcome;
    if result.is_err() && !app.finished() {
        // The screen failed while the run was live: never leave it running unseen.
        let _ = controls.send(Control::Abort);
    }
    // The run task ends shortly after its last event; wait a little for its answer.
    let outcome = match tokio::time::timeout(Duration::from_secs(60), done).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            result?;
            return Err(anyhow::anyhow!(
                "the deployment task stopped unexpectedly: {e}"
            ));
        }
        Err(_) => outcome_seen.unwrap_or(Outcome::Aborted),
    };
    result?;
    Ok(Left {
        ending: Ending::Finished(outcome),
        home,
    })
}

/// Play a journal (JSONL of events) through the same screen: `p` stops and goes on, `.` steps,
/// `+`/`-` change the speed. Nothing is sent anywhere.
pub async fn replay(path: &Path, opts: UiOptions, speed: f64) -> anyhow::Result<Closed> {
    let events = read_journal(path)?;
    let (theme, glyphs) = opts.resolve()?;
    let mut app = App::new(theme, glyphs);
    app.replay = true;
    app.replay_speed = speed.clamp(0.25, 64.0);
    let source = Source::Replay {
        events,
        next: 0,
        due: Instant::now(),
    };
    let mut console = Console::start(app, source)?;
    let result = console.run_loop().await;
    let signalled = console.signalled;
    console.finish();
    result.map(|()| Closed::from(signalled))
}

/// How a replay or a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The operator left (`q`, `esc`).
    Asked,
    /// SIGTERM or SIGHUP: the whole console leaves, not just this screen.
    Signal,
}

impl From<bool> for Closed {
    fn from(signalled: bool) -> Closed {
        if signalled {
            Closed::Signal
        } else {
            Closed::Asked
        }
    }
}

/// Watch a run that another console drives, from `events` (see [`crate::watch::spawn`]): the
/// same screen, read-only. No key can reach that run: this console holds no control channel
/// to it. The footer says whose run it is.
pub async fn watch(
    events: mpsc::UnboundedReceiver<Event>,
    opts: UiOptions,
    env: &str,
) -> anyhow::Result<Closed> {
    let (theme, glyphs) = opts.resolve()?;
    let mut app = App::new(theme, glyphs);
    app.watch = Some(format!("{env} (no deployment yet)"));
    // A channel nobody listens to: whatever were sent would go nowhere.
    let (controls, _) = mpsc::unbounded_channel();
    let source = Source::Live {
        events,
        controls,
        closed: false,
    };
    let mut console = Console::start(app, source)?;
    let result = console.run_loop().await;
    let signalled = console.signalled;
    console.finish();
    result.map(|()| Closed::from(signalled))
}

/// Read a journal to replay it (see `crate::journal::read_for_replay`).
pub fn read_journal(path: &Path) -> anyhow::Result<Vec<Event>> {
    Ok(crate::journal::read_for_replay(path)?)
}

enum Source {
    Live {
        events: mpsc::UnboundedReceiver<Event>,
        controls: mpsc::UnboundedSender<Control>,
        closed: bool,
    },
    Replay {
        events: Vec<Event>,
        next: usize,
        due: Instant,
    },
}

struct Console {
    app: App,
    source: Source,
    log: log::LogPane,
    terminal: Option<Terminal<CrosstermBackend<Stdout>>>,
    /// What the last frame laid out (the grid's columns), for the keys.
    drawn: Drawn,
    dirty: bool,
    last_draw: Option<Instant>,
    /// Leaving on the operator's request or a signal (pause, then go; abort when asked twice or
    /// when the running step outlasts the grace).
    leave: Leave,
    /// Left once the run had paused: the lock stays held for `deckhand resume`.
    left_paused: bool,
    /// Left with `esc` after the run, to go back to the home screen.
    home: bool,
    /// Left because of SIGTERM or SIGHUP: whoever opened this screen leaves too.
    signalled: bool,
}

/// Put the terminal back: raw mode off, main screen, cursor shown. Safe to call twice.
pub(crate) fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Console {
    fn start(app: App, source: Source) -> anyhow::Result<Console> {
        log::install();
        install_panic_hook();
        enable_raw_mode().context("switching the terminal to raw mode (is stdout a terminal?)")?;
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen, crossterm::cursor::Hide) {
            restore_terminal();
            return Err(e).context("entering the alternate screen");
        }
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore_terminal();
                return Err(e).context("opening the terminal");
            }
        };
        Ok(Console {
            app,
            source,
            log: log::LogPane::new(),
            terminal: Some(terminal),
            drawn: Drawn::default(),
            dirty: true,
            last_draw: None,
            leave: Leave::new(),
            left_paused: false,
            home: false,
            signalled: false,
        })
    }

    fn finish(mut self) -> App {
        self.terminal = None;
        restore_terminal();
        std::mem::replace(
            &mut self.app,
            App::new(Theme::default_theme(), Glyphs::ASCII),
        )
    }

    fn draw(&mut self) -> anyhow::Result<()> {
        if !self.app.replay {
            self.app.now_ms = now_ms();
            self.app.frame = (self.app.now_ms as u64 / SPIN_MS) as usize;
        }
        let Some(terminal) = self.terminal.as_mut() else {
            return Ok(());
        };
        let app = &self.app;
        let log = &self.log;
        let mut layout = Drawn::default();
        let drawn = terminal.draw(|f| {
            let area = f.area();
            layout = view::draw(app, Some(log), area, f.buffer_mut());
        });
        self.drawn = layout.or(self.drawn);
        if let Err(e) = drawn {
            if self.leave.leaving() {
                // The terminal may be gone (SIGHUP): go on leaving without a screen.
                self.terminal = None;
            } else {
                return Err(e).context("drawing the console");
            }
        }
        self.dirty = false;
        self.last_draw = Some(Instant::now());
        Ok(())
    }

    fn apply(&mut self, ev: &Event) {
        self.log.record(ev);
        self.app.apply(ev);
        if self.app.replay {
            self.app.now_ms = ev.at_ms;
        }
        self.dirty = true;
    }

    fn send(&mut self, control: Control) {
        if let Source::Live { controls, .. } = &self.source {
            if controls.send(control).is_err() {
                self.app.flash(
                    FlashLevel::Error,
                    "the deployment has already ended: nothing to send to",
                );
            }
        }
    }

    /// Carry out what a key asked for. Returns true when the console should close.
    fn effects(&mut self, effects: Vec<Effect>) -> bool {
        let mut quit = false;
        for e in effects {
            match e {
                Effect::Send(c) => self.send(c),
                Effect::Quit => quit = true,
                Effect::Home => {
                    self.home = true;
                    quit = true;
                }
                Effect::PauseAndLeave => {
                    if self.app.finished() {
                        quit |= self.leave_step(leave::Input::Ended);
                    }
                    let rolling_back = self.app.run().rolling_back;
                    quit |= self.leave_step(leave::Input::PauseAndLeave { rolling_back });
                }
                Effect::LogFilter(node) => self.log.set_filter(node.as_deref()),
                Effect::LogScroll(dir) => self.log.scroll(dir),
                Effect::ReplayPause => {
                    if let Source::Replay { due, .. } = &mut self.source {
                        *due = Instant::now();
                    }
                }
                Effect::ReplayStep => {
                    if let Source::Replay { events, next, .. } = &mut self.source {
                        if let Some(ev) = events.get(*next).cloned() {
                            *next += 1;
                            self.apply(&ev);
                        }
                    }
                }
            }
        }
        self.dirty = true;
        quit
    }

    /// Feed the leave policy one input and carry out its answer: send its control, flash its
    /// notice. True: leave now (after a pause, the lock stays held for `deckhand resume`).
    fn leave_step(&mut self, input: leave::Input) -> bool {
        let answer = self.leave.step(input, Instant::now());
        if let Some(c) = answer.send {
            self.send(c);
        }
        if let Some(n) = answer.say {
            self.app.flash(n.level(), n.console());
        }
        self.dirty = true;
        match answer.go {
            Some(Going::Paused) => {
                self.left_paused = true;
                true
            }
            Some(Going::Ended) => true,
            None => false,
        }
    }

    /// While leaving: go once the run is paused or over; abort a step that will not end.
    fn leave_progress(&mut self) -> bool {
        if !self.leave.leaving() {
            return false;
        }
        let closed = matches!(self.source, Source::Live { closed: true, .. });
        if self.app.finished() || closed {
            return self.leave_step(leave::Input::Ended);
        }
        if self.app.mode() == Mode::Paused && self.leave_step(leave::Input::Paused) {
            return true;
        }
        if self.leave.deadline().is_some_and(|d| Instant::now() >= d) {
            return self.leave_step(leave::Input::GraceElapsed);
        }
        false
    }

    async fn run_loop(&mut self) -> anyhow::Result<()> {
        let mut input = EventStream::new();
        #[cfg(unix)]
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        #[cfg(unix)]
        let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        loop {
            if self.dirty {
                let wait = self
                    .last_draw
                    .map(|t| Duration::from_millis(FRAME_MS).saturating_sub(t.elapsed()))
                    .unwrap_or_default();
                if wait.is_zero() {
                    self.draw()?;
                }
            }
            let tick = if self.app.animating() {
                Duration::from_millis(SPIN_MS)
            } else if self.app.run().info.is_some() && !self.app.finished() {
                Duration::from_millis(CLOCK_MS)
            } else {
                Duration::from_secs(3600)
            };
            let frame_wait = match (self.dirty, self.last_draw) {
                (true, Some(t)) => Duration::from_millis(FRAME_MS).saturating_sub(t.elapsed()),
                _ => tick,
            };
            let replay_due = match &self.source {
                Source::Replay { events, next, due }
                    if !self.app.replay_paused && *next < events.len() =>
                {
                    Some(*due)
                }
                _ => None,
            };
            let live_open = matches!(self.source, Source::Live { closed: false, .. });

            tokio::select! {
                ev = async {
                    match &mut self.source {
                        Source::Live { events, .. } => events.recv().await,
                        _ => std::future::pending().await,
                    }
                }, if live_open => {
                    match ev {
                        Some(ev) => {
                            self.apply(&ev);
                            // Fold the rest of a burst into the same frame.
                            let mut more = Vec::new();
                            if let Source::Live { events, .. } = &mut self.source {
                                while more.len() < 4096 {
                                    match events.try_recv() {
                                        Ok(e) => more.push(e),
                                        Err(_) => break,
                                    }
                                }
                            }
                            for e in &more {
                                self.apply(e);
                            }
                        }
                        None => {
                            if let Source::Live { closed, .. } = &mut self.source {
                                *closed = true;
                            }
                            if !self.app.finished() && !self.app.watching() {
                                self.app.flash(FlashLevel::Error,
                                    "the deployment stopped without a last word; see the log (l)");
                            }
                            self.dirty = true;
                        }
                    }
                }
                _ = async {
                    match replay_due {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.replay_next();
                }
                term = input.next() => {
                    match term {
                        Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                            let key = keys::Key::from_event(&k);
                            let effects = input::handle_key(&mut self.app, key, &self.drawn);
                            if self.effects(effects) {
                                return Ok(());
                            }
                        }
                        Some(Ok(TermEvent::Resize(_, _))) => {
                            if let Some(t) = self.terminal.as_mut() {
                                let _ = t.autoresize();
                            }
                            self.dirty = true;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e).context("reading the keyboard"),
                        None => return Ok(()),
                    }
                }
                _ = tokio::time::sleep(frame_wait.min(tick)) => {
                    if !self.app.replay {
                        self.dirty =
                            self.dirty || self.app.run().info.is_some() && !self.app.finished();
                    } else {
                        self.app.frame += 1;
                        self.dirty = self.dirty || self.app.animating();
                    }
                }
                _ = sigterm.recv() => {
                    if self.on_signal("SIGTERM") {
                        self.signalled = true;
                        return Ok(());
                    }
                }
                _ = sighup.recv() => {
                    if self.on_signal("SIGHUP") {
                        self.signalled = true;
                        return Ok(());
                    }
                }
            }
            if self.leave_progress() {
                return Ok(());
            }
        }
    }

    fn replay_next(&mut self) {
        let Source::Replay { events, next, due } = &mut self.source else {
            return;
        };
        let Some(ev) = events.get(*next).cloned() else {
            return;
        };
        *next += 1;
        let gap = events
            .get(*next)
            .map(|n| (n.at_ms - ev.at_ms).max(0) as u64)
            .unwrap_or(0)
            .min(REPLAY_MAX_GAP_MS);
        let speed = self.app.replay_speed.max(0.01);
        *due = Instant::now() + Duration::from_millis((gap as f64 / speed) as u64);
        self.apply(&ev);
    }

    /// SIGTERM or SIGHUP: leave at the next step boundary with the lock held (as the line
    /// printer does); the same signal again aborts the run now. True: leave at once (nothing
    /// is running: a replay, or a run that has finished).
    fn on_signal(&mut self, name: &'static str) -> bool {
        let mut go = false;
        if self.app.finished() || self.app.replay || self.app.watching() {
            go |= self.leave_step(leave::Input::Ended);
        }
        let rolling_back = self.app.run().rolling_back;
        go | self.leave_step(leave::Input::Signal { name, rolling_back })
    }
}
