//! Key presses: from a key to its `Action` (by the one table in `keys.rs`) to what changes on
//! the screen and the [`Effect`]s the run loop carries out (send a [`Control`], quit, pause and
//! leave, move the log pane or the replay).
//!
//! It changes screen state only (selection, focus, dialogs, the output view and its search, the
//! flash line, the controls waiting for an answer); the run state changes only when the engine's
//! events say so. It draws nothing, and it reads the last frame's layout ([`Drawn`]) only to
//! move the selection by a row of the grid.

use crossterm::event::KeyCode;

use crate::event::Control;

use super::app::{App, ConfirmKind, Dialog, FlashLevel, Focus, OutputView};
use super::keys::{self, Action, Key};
use super::model::Drawn;
pub use super::model::LogScroll;

/// What the run loop must do after a key press.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(Control),
    Quit,
    /// Pause, wait for the running step to end, stop cleanly, then leave.
    PauseAndLeave,
    ReplayPause,
    ReplayStep,
    /// The log pane's filter changed (`None`: every line).
    LogFilter(Option<String>),
    /// Page through the log pane's history.
    LogScroll(LogScroll),
    /// The run has ended: go back to the home screen.
    Home,
}

/// Handle one key press; returns what the run loop must do. `drawn` is what the last frame
/// drew (the grid's columns, for up and down).
pub fn handle_key(app: &mut App, key: Key, drawn: &Drawn) -> Vec<Effect> {
    // Text entry first: a protected environment's name, or a search.
    if let Some(Dialog::Confirm {
        typed_needed: Some(_),
        typed,
        ..
    }) = &mut app.dialog
    {
        match key.code {
            KeyCode::Char(c) if !key.ctrl => {
                typed.push(c);
                return vec![];
            }
            KeyCode::Backspace => {
                typed.pop();
                return vec![];
            }
            _ => {}
        }
    }
    if let Some(view) = app.output.as_mut().filter(|v| v.typing) {
        match key.code {
            KeyCode::Char(c) if !key.ctrl => view.search.push(c),
            KeyCode::Backspace => {
                view.search.pop();
            }
            KeyCode::Enter => {
                view.typing = false;
                next_match(app, true);
            }
            KeyCode::Esc => {
                view.typing = false;
                view.search.clear();
            }
            _ => {}
        }
        return vec![];
    }
    let scope = keys::scope(app);
    match keys::lookup(app, scope, key) {
        Some(b) => perform(app, drawn, b.action),
        None => vec![],
    }
}

/// Carry out an action from the key table.
pub(crate) fn perform(app: &mut App, drawn: &Drawn, action: Action) -> Vec<Effect> {
    match action {
        Action::PauseResume => {
            if app.is_paused_or_pausing() {
                app.pending = Some(Control::Resume);
                app.flash(FlashLevel::Info, "resume asked");
                vec![Effect::Send(Control::Resume)]
            } else {
                app.pending = Some(Control::Pause);
                app.flash(
                    FlashLevel::Info,
                    "pause asked: the running step ends first, no new step starts",
                );
                vec![Effect::Send(Control::Pause)]
            }
        }
        Action::Step => {
            app.pending = Some(Control::Step);
            app.flash(
                FlashLevel::Info,
                "step: the next step of each node in flight, then paused again",
            );
            vec![Effect::Send(Control::Step)]
        }
        Action::Home => vec![Effect::Home],
        Action::Promote => {
            app.pending = Some(Control::Promote);
            app.flash(FlashLevel::Info, "promote asked");
            vec![Effect::Send(Control::Promote)]
        }
        Action::OpenOutput => {
            let node = match app.focus {
                Focus::Phases if app.run().nodes.is_empty() => None,
                _ => app.selected_node().map(|n| n.name.clone()),
            };
            if node.is_none() && app.run().local_output.is_empty() && app.run().nodes.is_empty() {
                return vec![];
            }
            app.output = Some(OutputView {
                node,
                top: 0,
                follow: true,
                search: String::new(),
                typing: false,
            });
            vec![]
        }
        Action::TickCheck => tick_check(app),
        Action::Rollback => {
            app.dialog = Some(rollback_dialog(app));
            vec![]
        }
        Action::Abort => {
            app.dialog = Some(abort_dialog(app));
            vec![]
        }
        Action::Prev => move_selection(app, drawn, -1, false),
        Action::Next => move_selection(app, drawn, 1, false),
        Action::Up => move_selection(app, drawn, -1, true),
        Action::Down => move_selection(app, drawn, 1, true),
        Action::FocusNext | Action::FocusPrev => {
            let mut order = vec![Focus::Grid, Focus::Phases, Focus::Checklist];
            if app.show_log {
                order.push(Focus::Log);
            }
            let pos = order.iter().position(|f| *f == app.focus).unwrap_or(0);
            let len = order.len();
            let next = if action == Action::FocusNext {
                (pos + 1) % len
            } else {
                (pos + len - 1) % len
            };
            app.focus = order[next];
            vec![]
        }
        Action::ToggleLog => {
            app.show_log = !app.show_log;
            if !app.show_log && app.focus == Focus::Log {
                app.focus = Focus::Grid;
            }
            vec![]
        }
        Action::LogFilter => {
            app.log_filter = match app.log_filter {
                Some(_) => None,
                None => app.selected_node().map(|n| n.name.clone()),
            };
            let text = match &app.log_filter {
                Some(n) => format!("log: only {n}"),
                None => "log: every node".to_string(),
            };
            app.flash(FlashLevel::Info, text);
            vec![Effect::LogFilter(app.log_filter.clone())]
        }
        Action::LogPageUp => vec![Effect::LogScroll(LogScroll::Older)],
        Action::LogPageDown => vec![Effect::LogScroll(LogScroll::Newer)],
        Action::LogFollow => vec![Effect::LogScroll(LogScroll::Newest)],
        Action::NextTheme => {
            app.theme = app.theme.next_builtin();
            let text = format!("theme: {}", app.theme.name);
            app.flash(FlashLevel::Info, text);
            vec![]
        }
        Action::Help => {
            app.show_help = !app.show_help;
            vec![]
        }
        Action::Quit => {
            if app.replay || app.watching() || app.run().info.is_none() || app.finished() {
                vec![Effect::Quit]
            } else {
                app.dialog = Some(Dialog::Quit);
                vec![]
            }
        }
        Action::Confirm => confirm(app),
        Action::Cancel | Action::KeepGoing => {
            app.dialog = None;
            if action == Action::KeepGoing {
                app.flash(FlashLevel::Info, "staying: the deployment keeps going");
            }
            vec![]
        }
        Action::PauseAndLeave => {
            app.dialog = None;
            if app.run().rolling_back {
                app.flash(FlashLevel::Warn, "leaving once the rollback has finished");
            } else {
                app.pending = Some(Control::Pause);
                app.flash(
                    FlashLevel::Warn,
                    "leaving: pausing after the running step; the lock stays held for resume",
                );
            }
            vec![Effect::PauseAndLeave]
        }
        Action::ScrollUp => scroll(app, -1),
        Action::ScrollDown => scroll(app, 1),
        Action::PageUp => scroll(app, -20),
        Action::PageDown => scroll(app, 20),
        Action::Top => {
            if let Some(v) = &mut app.output {
                v.top = 0;
                v.follow = false;
            }
            vec![]
        }
        Action::Bottom => {
            if let Some(v) = &mut app.output {
                v.follow = true;
            }
            vec![]
        }
        Action::Search => {
            if let Some(v) = &mut app.output {
                v.typing = true;
                v.search.clear();
            }
            vec![]
        }
        Action::NextMatch => {
            next_match(app, false);
            vec![]
        }
        Action::Close => {
            if app.show_help {
                app.show_help = false;
            } else {
                app.output = None;
            }
            vec![]
        }
        Action::ReplayPause => {
            app.replay_paused = !app.replay_paused;
            vec![Effect::ReplayPause]
        }
        Action::ReplayStep => vec![Effect::ReplayStep],
        Action::ReplayFaster | Action::ReplaySlower => {
            let s = if action == Action::ReplayFaster {
                (app.replay_speed * 2.0).min(64.0)
            } else {
                (app.replay_speed / 2.0).max(0.25)
            };
            app.replay_speed = s;
            // The replay loop reads the speed from here when it schedules the next event.
            app.flash(FlashLevel::Info, format!("replay speed ×{s}"));
            vec![]
        }
    }
}

fn move_selection(app: &mut App, drawn: &Drawn, delta: i64, by_row: bool) -> Vec<Effect> {
    match app.focus {
        Focus::Checklist => {
            let order = app.run().checklist_order();
            if !order.is_empty() {
                let at = order
                    .iter()
                    .position(|&i| i == app.selected_check)
                    .unwrap_or(0);
                let pos = (at as i64 + delta).clamp(0, order.len() as i64 - 1);
                app.selected_check = order[pos as usize];
            }
        }
        _ => {
            let len = app.run().nodes.len();
            if len > 0 {
                let step = if by_row {
                    drawn.grid_columns().max(1) as i64
                } else {
                    1
                };
                let pos = app.selected as i64 + delta * step;
                if (0..len as i64).contains(&pos) {
                    app.selected = pos as usize;
                }
            }
            if let (Some(f), Some(n)) = (&app.log_filter, app.selected_node()) {
                if f != &n.name {
                    let name = n.name.clone();
                    app.log_filter = Some(name.clone());
                    return vec![Effect::LogFilter(Some(name))];
                }
            }
        }
    }
    vec![]
}

fn tick_check(app: &mut App) -> Vec<Effect> {
    let Some(c) = app.run().checks.get(app.selected_check) else {
        return vec![];
    };
    if !c.info.manual {
        return vec![];
    }
    // Shown as passed at once; the engine's confirmation follows as a check event.
    let name = c.info.name.clone();
    if !app.ticked.contains(&name) {
        app.ticked.push(name.clone());
    }
    app.flash(FlashLevel::Info, format!("ticked: {name}"));
    vec![Effect::Send(Control::Confirm { check: name })]
}

fn rollback_dialog(app: &App) -> Dialog {
    let mut lines = Vec::new();
    let arrow = app.glyphs.arrow;
    let mut touched = 0;
    for n in &app.run().nodes {
        let switched = n.release.is_some() && n.release != n.start_release;
        let back = n.start_release.as_deref().unwrap_or("(none)");
        if switched {
            touched += 1;
            lines.push(format!(
                "  {:<14} {} {arrow} {back}",
                n.name,
                n.release.as_deref().unwrap_or("?")
            ));
        } else if n.in_flight() {
            touched += 1;
            lines.push(format!("  {:<14} stopped, stays on {back}", n.name));
        }
    }
    let untouched = app.run().nodes.len() - touched;
    let mut head = vec![if touched == 0 {
        "No node has been switched yet: rolling back stops the run here.".to_string()
    } else {
        "These nodes go back to the release they served before:".to_string()
    }];
    head.append(&mut lines);
    if untouched > 0 {
        let others = crate::util::count(untouched, "other node is", "other nodes are");
        head.push(format!("  {others} not touched."));
    }
    let run = app.run().info.as_ref();
    let typed_needed = run.filter(|r| r.protected).map(|r| r.env.clone());
    let title = match run {
        Some(r) => format!("Roll back {} in {}?", r.app, r.env),
        None => "Roll back?".into(),
    };
    Dialog::Confirm {
        kind: ConfirmKind::Rollback,
        title,
        lines: head,
        typed_needed,
        typed: String::new(),
    }
}

fn abort_dialog(app: &App) -> Dialog {
    let running: Vec<&str> = app
        .run()
        .nodes
        .iter()
        .filter(|n| n.in_flight())
        .map(|n| n.name.as_str())
        .collect();
    let mut lines = vec![
        "Running steps are stopped; no further node is touched.".to_string(),
        "Every node is left on a whole release and the lock is released.".to_string(),
    ];
    if !running.is_empty() {
        lines.push(format!("In flight now: {}", running.join(", ")));
    }
    let run = app.run().info.as_ref();
    Dialog::Confirm {
        kind: ConfirmKind::Abort,
        title: match run {
            Some(r) => format!("Abort the deployment of {} to {}?", r.release, r.env),
            None => "Abort?".into(),
        },
        lines,
        // An abort is the emergency stop: one key to confirm, even when protected.
        typed_needed: None,
        typed: String::new(),
    }
}

fn confirm(app: &mut App) -> Vec<Effect> {
    let Some(Dialog::Confirm {
        kind,
        typed_needed,
        typed,
        ..
    }) = &app.dialog
    else {
        return vec![];
    };
    if let Some(need) = typed_needed {
        if typed.trim() != need {
            let text = format!("type `{need}` to confirm (esc to cancel)");
            app.flash(FlashLevel::Warn, text);
            return vec![];
        }
    }
    let kind = *kind;
    app.dialog = None;
    match kind {
        ConfirmKind::Rollback => {
            app.pending = Some(Control::Rollback);
            app.flash(FlashLevel::Warn, "roll back asked");
            vec![Effect::Send(Control::Rollback)]
        }
        ConfirmKind::Abort => {
            app.pending = Some(Control::Abort);
            app.flash(FlashLevel::Warn, "abort asked");
            vec![Effect::Send(Control::Abort)]
        }
    }
}

fn scroll(app: &mut App, delta: i64) -> Vec<Effect> {
    let len = app.output_lines().len() as i64;
    if let Some(v) = &mut app.output {
        let top = if v.follow {
            (len - 20).max(0)
        } else {
            v.top as i64
        };
        v.top = (top + delta).clamp(0, (len - 1).max(0)) as usize;
        v.follow = false;
    }
    vec![]
}

fn next_match(app: &mut App, from_top: bool) {
    let Some(view) = app.output.as_ref() else {
        return;
    };
    if view.search.is_empty() {
        return;
    }
    let needle = view.search.to_lowercase();
    let start = if from_top { 0 } else { view.top + 1 };
    let lines = app.output_lines();
    let found = lines
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.line.to_lowercase().contains(&needle))
        .or_else(|| {
            lines
                .iter()
                .enumerate()
                .find(|(_, l)| l.line.to_lowercase().contains(&needle))
        })
        .map(|(i, _)| i);
    match found {
        Some(i) => {
            if let Some(v) = &mut app.output {
                v.top = i;
                v.follow = false;
            }
        }
        None => {
            let text = format!("no line matches `{}`", needle);
            app.flash(FlashLevel::Warn, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::app::Mode;
    use crate::ui::fixtures;
    use crate::ui::keys::Scope;

    fn key(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: false,
        }
    }
    fn code(code: KeyCode) -> Key {
        Key { code, ctrl: false }
    }

    /// A key press on a screen whose grid has six columns.
    fn press(app: &mut App, key: Key) -> Vec<Effect> {
        handle_key(
            app,
            key,
            &Drawn {
                grid_columns: Some(6),
            },
        )
    }

    fn protected_mid_rollout() -> App {
        fixtures::protected_mid_rollout().into_app()
    }

    #[test]
    fn a_protected_rollback_needs_the_environment_typed() {
        let mut app = protected_mid_rollout();
        assert!(press(&mut app, key('R')).is_empty());
        // y is typed into the box, not taken as a confirmation
        assert!(press(&mut app, key('y')).is_empty());
        assert!(
            press(&mut app, code(KeyCode::Enter)).is_empty(),
            "wrong name confirms"
        );
        assert!(app.dialog.is_some());
        press(&mut app, code(KeyCode::Backspace));
        for c in "production".chars() {
            press(&mut app, key(c));
        }
        assert_eq!(
            press(&mut app, code(KeyCode::Enter)),
            vec![Effect::Send(Control::Rollback)]
        );
        assert!(app.dialog.is_none());
        assert_eq!(app.mode(), Mode::RollingBack);
    }

    #[test]
    fn escape_cancels_a_rollback_and_nothing_is_sent() {
        let mut app = fixtures::mid_rollout().into_app();
        press(&mut app, key('R'));
        assert!(press(&mut app, code(KeyCode::Esc)).is_empty());
        assert!(app.dialog.is_none());
        assert_eq!(app.mode(), Mode::Deploying);
    }

    #[test]
    fn abort_is_one_key_to_confirm_even_when_protected() {
        let mut app = protected_mid_rollout();
        press(&mut app, key('a'));
        assert_eq!(
            press(&mut app, key('y')),
            vec![Effect::Send(Control::Abort)]
        );
    }

    #[test]
    fn abort_asks_first() {
        let mut app = fixtures::mid_rollout().into_app();
        assert!(press(&mut app, key('a')).is_empty());
        assert_eq!(
            press(&mut app, key('y')),
            vec![Effect::Send(Control::Abort)]
        );
        assert_eq!(app.mode(), Mode::Aborting);
    }

    #[test]
    fn quitting_while_deploying_asks_and_can_pause_and_leave() {
        let mut app = fixtures::mid_rollout().into_app();
        assert!(press(&mut app, key('q')).is_empty());
        assert_eq!(app.dialog, Some(Dialog::Quit));
        assert!(press(&mut app, key('k')).is_empty(), "keep going");
        assert!(app.dialog.is_none());
        press(&mut app, key('q'));
        assert_eq!(press(&mut app, key('p')), vec![Effect::PauseAndLeave]);
        assert!(app.flash_now().is_some_and(|f| f
            .text
            .starts_with("leaving: pausing after the running step")));
        assert_eq!(app.mode(), Mode::Pausing);
    }

    #[test]
    fn quitting_after_the_run_leaves_at_once() {
        let mut app = fixtures::rolled_back().into_app();
        assert_eq!(press(&mut app, key('q')), vec![Effect::Quit]);
    }

    #[test]
    fn enter_promotes_at_a_gate_and_opens_output_otherwise() {
        let mut app = fixtures::gate().into_app();
        assert_eq!(
            press(&mut app, code(KeyCode::Enter)),
            vec![Effect::Send(Control::Promote)]
        );
        let mut app = fixtures::mid_rollout().into_app();
        app.selected = 1;
        assert!(press(&mut app, code(KeyCode::Enter)).is_empty());
        assert_eq!(
            app.output.as_ref().and_then(|o| o.node.clone()),
            Some("web-2".into())
        );
        assert!(app
            .output_lines()
            .iter()
            .any(|l| l.line.contains("112 packages")));
    }

    #[test]
    fn output_search_jumps_to_the_matching_line() {
        let mut app = fixtures::failed_node().into_app();
        app.selected = 2;
        perform(&mut app, &Drawn::default(), Action::OpenOutput);
        press(&mut app, key('/'));
        for c in "php-fpm".chars() {
            press(&mut app, key(c));
        }
        press(&mut app, code(KeyCode::Enter));
        let view = app.output.as_ref().expect("output open");
        assert!(app.output_lines()[view.top]
            .line
            .contains("php-fpm reloaded"));
        assert!(!view.follow);
    }

    #[test]
    fn arrows_move_the_selection_by_box_and_by_row() {
        // The last frame drew the grid three boxes wide.
        let drawn = Drawn {
            grid_columns: Some(3),
        };
        let mut app = fixtures::mid_rollout().into_app();
        handle_key(&mut app, code(KeyCode::Right), &drawn);
        assert_eq!(app.selected, 1);
        handle_key(&mut app, key('j'), &drawn);
        assert_eq!(app.selected, 4);
        handle_key(&mut app, key('j'), &drawn);
        assert_eq!(app.selected, 4, "no row below: the selection stays");
        handle_key(&mut app, key('h'), &drawn);
        assert_eq!(app.selected, 3);
        // Before any frame (or after only a too-small one) a row is one node.
        handle_key(&mut app, key('k'), &Drawn::default());
        assert_eq!(app.selected, 2);
    }

    #[test]
    fn the_footer_only_offers_keys_that_work_now() {
        let app = fixtures::gate().into_app();
        let words: Vec<String> = keys::footer(&app, keys::scope(&app))
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert!(words.contains(&"promote".to_string()));
        assert!(!words.contains(&"output".to_string()));
        assert!(!words.contains(&"pause".to_string()), "no pause at a gate");
        let app = fixtures::rolled_back().into_app();
        let words: Vec<String> = keys::footer(&app, keys::scope(&app))
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert!(!words
            .iter()
            .any(|w| w == "roll back" || w == "abort" || w == "pause"));
    }

    #[test]
    fn every_key_in_the_footer_does_what_it_says() {
        // For each footer entry on the main screen, pressing its first key performs its action.
        let app = fixtures::mid_rollout().into_app();
        for b in keys::BINDINGS
            .iter()
            .filter(|b| b.scope == Scope::Main && b.footer.is_some())
        {
            if !keys::applies(&app, b.when) {
                continue;
            }
            let found = keys::lookup(&app, Scope::Main, b.keys[0]).map(|f| f.action);
            assert_eq!(found, Some(b.action), "key {} in the footer", b.shown);
        }
    }

    #[test]
    fn replay_never_sends_controls() {
        let mut app = fixtures::mid_rollout().into_app();
        app.replay = true;
        assert_eq!(press(&mut app, key('p')), vec![Effect::ReplayPause]);
        assert!(press(&mut app, key('R')).is_empty());
        assert!(press(&mut app, key('a')).is_empty());
        assert_eq!(press(&mut app, key('q')), vec![Effect::Quit]);
    }

    #[test]
    fn a_tick_shows_the_item_passed_until_the_engine_confirms_it() {
        let mut app = fixtures::checklist_mixed().into_app();
        app.focus = Focus::Checklist;
        app.selected_check = 6; // "All critical paths tested", manual, waiting
        assert!(app.selected_check_needs_tick());
        assert_eq!(
            press(&mut app, key(' ')),
            vec![Effect::Send(Control::Confirm {
                check: "All critical paths tested".into()
            })]
        );
        let c = &app.run().checks[6];
        assert_eq!(
            c.status,
            crate::event::CheckStatus::NeedsConfirmation,
            "the run state waits for the engine"
        );
        assert_eq!(
            app.check_shown(c),
            (crate::event::CheckStatus::Pass, Some("confirmed"))
        );
        assert!(!app.selected_check_needs_tick(), "space now pauses again");
        // The engine's answer replaces the optimistic tick.
        let mut s = fixtures::checklist_mixed();
        s.check(
            "All critical paths tested",
            None,
            crate::event::CheckStatus::Pass,
            Some("confirmed by the operator"),
        );
        app.apply(s.events.last().expect("the check event"));
        assert!(app.ticked.is_empty());
        let c = &app.run().checks[6];
        assert_eq!(
            app.check_shown(c),
            (
                crate::event::CheckStatus::Pass,
                Some("confirmed by the operator")
            )
        );
    }

    #[test]
    fn keys_change_no_run_state() {
        // Every key on every layer of a live screen: the run state stays as the events left it.
        let mut app = fixtures::gate().into_app();
        let before = format!("{:?}", app.run());
        let keys = "pRyanaqkqlt?x .+-/gGn".chars().map(key).chain(
            [
                KeyCode::Enter,
                KeyCode::Esc,
                KeyCode::Tab,
                KeyCode::BackTab,
                KeyCode::Up,
                KeyCode::Down,
                KeyCode::Left,
                KeyCode::Right,
                KeyCode::PageUp,
                KeyCode::PageDown,
                KeyCode::Backspace,
            ]
            .map(code),
        );
        for k in keys {
            press(&mut app, k);
        }
        assert_eq!(format!("{:?}", app.run()), before);
    }
}
