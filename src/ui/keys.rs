//! The one table of key bindings. Key handling, the footer and the `?` help all read
//! `BINDINGS`, so what the screen says a key does is what it does.
//!
//! This module only maps keys to `Action`s and says, from the state it reads, which layer hears
//! keys and when each binding applies; it performs nothing itself (that is `input.rs`) and draws
//! nothing (that is `help.rs` and the footer).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Dialog, Focus};

/// What a key asks for. `input::perform` carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    PauseResume,
    Step,
    Home,
    Promote,
    OpenOutput,
    TickCheck,
    Rollback,
    Abort,
    Prev,
    Next,
    Up,
    Down,
    FocusNext,
    FocusPrev,
    ToggleLog,
    LogFilter,
    LogPageUp,
    LogPageDown,
    LogFollow,
    NextTheme,
    Help,
    Quit,
    // confirm dialogs
    Confirm,
    Cancel,
    // quit dialog
    PauseAndLeave,
    KeepGoing,
    // node output
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Search,
    NextMatch,
    Close,
    // replay
    ReplayPause,
    ReplayStep,
    ReplayFaster,
    ReplaySlower,
}

/// Where a binding is heard: the main screen or one of the layers drawn over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Main,
    Confirm,
    QuitDialog,
    Output,
    Help,
}

/// When a binding applies. Evaluated against the current state for handling, footer and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    /// A live run that has not finished and is not at a gate or aborting.
    CanPause,
    /// Paused with nothing running, in a run this console drives.
    CanStep,
    /// The run has ended and the console was opened from the home screen.
    EndedFromHome,
    AtGate,
    NotAtGate,
    ManualItemSelected,
    CanRollback,
    CanAbort,
    LogShown,
    LogFocused,
    Replay,
}

/// One key press as the console reads it: the key, and whether control was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}
const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}
const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

pub(crate) struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    /// How the keys are written in the footer and the help.
    pub shown: &'static str,
    pub action: Action,
    pub when: When,
    /// Short word for the footer; `None` keeps the binding out of the footer.
    pub footer: Option<&'static str>,
    /// Sentence for the help overlay.
    pub help: &'static str,
}

macro_rules! bind {
    ($scope:ident, [$($k:expr),+], $shown:expr, $action:ident, $when:ident, $footer:expr, $help:expr) => {
        Binding {
            scope: Scope::$scope,
            keys: &[$($k),+],
            shown: $shown,
            action: Action::$action,
            when: When::$when,
            footer: $footer,
            help: $help,
        }
    };
}

/// Every key the console answers to. Order matters: the first binding whose keys match and
/// whose condition holds wins (so `space` ticks a selected manual checklist item before it
/// pauses).
pub(crate) static BINDINGS: &[Binding] = &[
    // main screen
    bind!(
        Main,
        [ch(' '), ch('x')],
        "space/x",
        TickCheck,
        ManualItemSelected,
        Some("tick"),
        "Tick the selected manual checklist item"
    ),
    bind!(
        Main,
        [ch('p'), ch(' ')],
        "p/space",
        PauseResume,
        CanPause,
        Some("pause"),
        "Pause after the running step; again: go on"
    ),
    bind!(
        Main,
        [ch('s')],
        "s",
        Step,
        CanStep,
        Some("step"),
        "Paused: one more step per node in flight"
    ),
    bind!(
        Main,
        [code(KeyCode::Esc)],
        "esc",
        Home,
        EndedFromHome,
        Some("home"),
        "After the run: back to the home screen"
    ),
    bind!(
        Main,
        [ch('p'), ch(' ')],
        "p/space",
        ReplayPause,
        Replay,
        Some("pause replay"),
        "Replay: stop / go on"
    ),
    bind!(
        Main,
        [ch('.')],
        ".",
        ReplayStep,
        Replay,
        Some("step"),
        "Replay: play the next event"
    ),
    bind!(
        Main,
        [ch('+'), ch('=')],
        "+",
        ReplayFaster,
        Replay,
        Some("speed"),
        "Replay: faster / slower"
    ),
    bind!(
        Main,
        [ch('-')],
        "-",
        ReplaySlower,
        Replay,
        None,
        "Replay: faster / slower"
    ),
    bind!(
        Main,
        [code(KeyCode::Enter)],
        "enter",
        Promote,
        AtGate,
        Some("promote"),
        "Promote at a gate; end a checklist watch"
    ),
    bind!(
        Main,
        [code(KeyCode::Enter)],
        "enter",
        OpenOutput,
        NotAtGate,
        Some("output"),
        "The selected node's full output"
    ),
    bind!(
        Main,
        [ch('R')],
        "R",
        Rollback,
        CanRollback,
        Some("roll back"),
        "Roll back the switched nodes (asks first)"
    ),
    bind!(
        Main,
        [ch('a')],
        "a",
        Abort,
        CanAbort,
        Some("abort"),
        "Abort now, every node on a whole release"
    ),
    bind!(
        Main,
        [code(KeyCode::Left), ch('h')],
        "←/h",
        Prev,
        Always,
        None,
        "Previous / next node or checklist item"
    ),
    bind!(
        Main,
        [code(KeyCode::Right)],
        "→",
        Next,
        Always,
        None,
        "Previous / next node or checklist item"
    ),
    bind!(
        Main,
        [code(KeyCode::Up), ch('k')],
        "↑/k",
        Up,
        Always,
        None,
        "Node above / below; item up / down"
    ),
    bind!(
        Main,
        [code(KeyCode::Down), ch('j')],
        "↓/j",
        Down,
        Always,
        Some("select"),
        "Node above / below; item up / down"
    ),
    bind!(
        Main,
        [code(KeyCode::Tab)],
        "tab",
        FocusNext,
        Always,
        Some("focus"),
        "Focus: nodes, phases, checklist, log"
    ),
    bind!(
        Main,
        [code(KeyCode::BackTab)],
        "shift-tab",
        FocusPrev,
        Always,
        None,
        "Focus back"
    ),
    bind!(
        Main,
        [ch('l')],
        "l",
        ToggleLog,
        Always,
        Some("log"),
        "Show or hide the log pane"
    ),
    bind!(
        Main,
        [ch('f')],
        "f",
        LogFilter,
        LogShown,
        Some("filter"),
        "Log: the selected node only, or all"
    ),
    bind!(
        Main,
        [code(KeyCode::PageUp)],
        "pgup",
        LogPageUp,
        LogFocused,
        Some("older"),
        "Log (focused): older / newer lines"
    ),
    bind!(
        Main,
        [code(KeyCode::PageDown)],
        "pgdn",
        LogPageDown,
        LogFocused,
        None,
        "Log (focused): older / newer lines"
    ),
    bind!(
        Main,
        [code(KeyCode::Esc)],
        "esc",
        LogFollow,
        LogFocused,
        None,
        "Log (focused): back to the newest lines"
    ),
    bind!(
        Main,
        [ch('t')],
        "t",
        NextTheme,
        Always,
        None,
        "Next colour theme"
    ),
    bind!(
        Main,
        [ch('?')],
        "?",
        Help,
        Always,
        Some("help"),
        "Show or hide this help"
    ),
    bind!(
        Main,
        [ch('q'), ctrl('c')],
        "q",
        Quit,
        Always,
        Some("quit"),
        "Quit (while deploying, asks first)"
    ),
    // confirm dialog (roll back, abort)
    bind!(
        Confirm,
        [ch('y'), code(KeyCode::Enter)],
        "y/enter",
        Confirm,
        Always,
        Some("confirm"),
        "Confirm (protected rollback: type name)"
    ),
    bind!(
        Confirm,
        [ch('n'), code(KeyCode::Esc)],
        "n/esc",
        Cancel,
        Always,
        Some("cancel"),
        "Cancel: nothing changes"
    ),
    // quit while deploying
    bind!(
        QuitDialog,
        [ch('p')],
        "p",
        PauseAndLeave,
        Always,
        Some("pause and leave"),
        "Pause, then leave; resume it later"
    ),
    bind!(
        QuitDialog,
        [ch('k'), code(KeyCode::Esc), ch('n')],
        "k/esc",
        KeepGoing,
        Always,
        Some("keep going"),
        "Stay: the deployment keeps going"
    ),
    // node output
    bind!(
        Output,
        [code(KeyCode::Up), ch('k')],
        "↑/k",
        ScrollUp,
        Always,
        None,
        "Scroll up / down"
    ),
    bind!(
        Output,
        [code(KeyCode::Down), ch('j')],
        "↓/j",
        ScrollDown,
        Always,
        Some("scroll"),
        "Scroll up / down"
    ),
    bind!(
        Output,
        [code(KeyCode::PageUp)],
        "pgup",
        PageUp,
        Always,
        None,
        "Page up / down"
    ),
    bind!(
        Output,
        [code(KeyCode::PageDown)],
        "pgdn",
        PageDown,
        Always,
        None,
        "Page up / down"
    ),
    bind!(
        Output,
        [ch('g'), code(KeyCode::Home)],
        "g",
        Top,
        Always,
        None,
        "First line"
    ),
    bind!(
        Output,
        [ch('G'), code(KeyCode::End)],
        "G",
        Bottom,
        Always,
        Some("follow"),
        "Last line, and follow new output"
    ),
    bind!(
        Output,
        [ch('/')],
        "/",
        Search,
        Always,
        Some("search"),
        "Search the output"
    ),
    bind!(
        Output,
        [ch('n')],
        "n",
        NextMatch,
        Always,
        Some("next match"),
        "Next match"
    ),
    bind!(
        Output,
        [code(KeyCode::Esc), ch('q'), code(KeyCode::Enter)],
        "esc",
        Close,
        Always,
        Some("close"),
        "Back to the console"
    ),
    // help
    bind!(
        Help,
        [code(KeyCode::Esc), ch('?'), ch('q')],
        "esc",
        Close,
        Always,
        Some("close"),
        "Close the help"
    ),
];

impl Key {
    pub(crate) fn from_event(ev: &KeyEvent) -> Key {
        // Shift is not part of a key: terminals report shift-letters as the upper-case char
        // (`R`), some with SHIFT set and some without.
        Key {
            code: ev.code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
        }
    }
}

/// Which layer hears keys now: a dialog, the help, the output view, or the main screen.
pub(crate) fn scope(app: &App) -> Scope {
    match &app.dialog {
        Some(Dialog::Confirm { .. }) => Scope::Confirm,
        Some(Dialog::Quit) => Scope::QuitDialog,
        None if app.show_help => Scope::Help,
        None if app.output.is_some() => Scope::Output,
        None => Scope::Main,
    }
}

/// Whether a binding's condition holds now.
pub(crate) fn applies(app: &App, when: When) -> bool {
    match when {
        When::Always => true,
        When::CanPause => app.can_pause(),
        When::CanStep => app.can_step(),
        When::EndedFromHome => app.from_home && app.finished() && !app.replay,
        When::AtGate => {
            !app.replay
                && !app.watching()
                && (app.run().gate.is_some() || app.run().monitoring.is_some())
                && !app.finished()
        }
        When::NotAtGate => !applies(app, When::AtGate),
        When::ManualItemSelected => {
            app.focus == Focus::Checklist && app.selected_check_needs_tick() && !app.watching()
        }
        When::CanRollback => app.can_rollback(),
        When::CanAbort => app.can_abort(),
        When::LogShown => app.show_log,
        When::LogFocused => app.show_log && app.focus == Focus::Log,
        When::Replay => app.replay,
    }
}

/// The binding a key press means in this scope now, if any.
pub(crate) fn lookup(app: &App, scope: Scope, key: Key) -> Option<&'static Binding> {
    BINDINGS
        .iter()
        .filter(|b| b.scope == scope)
        .filter(|b| b.keys.contains(&key))
        .find(|b| applies(app, b.when))
}

/// The bindings to show in the footer for this scope now, one per action.
pub(crate) fn footer(app: &App, scope: Scope) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut seen: Vec<Action> = Vec::new();
    for b in BINDINGS.iter().filter(|b| b.scope == scope) {
        let Some(word) = b.footer else { continue };
        if seen.contains(&b.action) || !applies(app, b.when) {
            continue;
        }
        seen.push(b.action);
        let word = match b.action {
            Action::PauseResume if app.is_paused_or_pausing() => "resume".to_string(),
            Action::ReplayPause if app.replay_paused => "play".to_string(),
            Action::LogFilter if app.log_filter.is_some() => "all nodes".to_string(),
            Action::Promote if app.run().gate.is_none() => "end watch".to_string(),
            _ => word.to_string(),
        };
        let shown = match b.action {
            Action::ReplayFaster => "+/-",
            Action::Down if app.glyphs.ascii => "arrows",
            Action::Down => "↑↓←→",
            _ => b.shown,
        };
        out.push((shown, word));
    }
    out
}
