//! Snapshot tests of every console screen, each built from a synthetic event sequence fed
//! through the same reducer a live run uses, drawn into a ratatui TestBackend.
//!
//! Besides the snapshot, each test asserts the few things an operator must be able to read on
//! that screen.

use deckhand::ui::app::App;
use deckhand::ui::fixtures::{self, scene};
use deckhand::ui::input::{handle_key, Effect};
use deckhand::ui::keys::Key;
use deckhand::ui::theme::Glyphs;
use deckhand::ui::view::{self, Drawn};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn draw(app: &App, w: u16, h: u16) -> String {
    draw_laid_out(app, w, h).0
}

/// The screen, and what the frame laid out for the keys.
fn draw_laid_out(app: &App, w: u16, h: u16) -> (String, Drawn) {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    let mut drawn = Drawn::default();
    t.draw(|f| {
        let area = f.area();
        drawn = view::draw(app, None, area, f.buffer_mut());
    })
    .expect("draw");
    (t.backend().to_string(), drawn)
}

fn screen(name: &str) -> String {
    let app = scene(name).expect("scene exists");
    draw(&app, 120, 36)
}

fn key(c: char) -> Key {
    Key {
        code: crossterm::event::KeyCode::Char(c),
        ctrl: false,
    }
}

#[test]
fn before_start() {
    let s = screen("before-start");
    assert!(s.contains(" READY "));
    assert!(s.contains("Load Balancer · 5/5 in rotation"));
    assert!(s.contains("Immediate (0-5 minutes)"));
    insta::assert_snapshot!("before_start", s);
}

#[test]
fn mid_rollout() {
    let s = screen("mid-rollout");
    assert!(s.contains(" DEPLOYING "));
    assert!(s.contains("Load Balancer · 4/5 in rotation"));
    // node 1 done on the new release, node 2 drained (cut) and moving from v1.0 to v1.1
    assert!(s.contains("● healthy"));
    assert!(s.contains("v1.0 → v1.1"));
    assert!(s.contains("✕"), "the drained node's connector is cut");
    assert!(s.contains("updating:") && s.contains("install_depende"));
    assert!(s.contains("batch 2/3"));
    insta::assert_snapshot!("mid_rollout", s);
}

#[test]
fn paused() {
    let s = screen("paused");
    assert!(s.contains(" PAUSED "));
    assert!(s.contains("no step is running"));
    assert!(s.contains("p/space resume"), "the footer offers resume");
    insta::assert_snapshot!("paused", s);
}

#[test]
fn gate_waiting_for_promote() {
    let s = screen("gate");
    assert!(s.contains(" WAITING "));
    assert!(s.contains("enter promote"));
    assert!(s.contains("after batch 1 of 3"));
    insta::assert_snapshot!("gate", s);
}

#[test]
fn rollback_confirm_dialog_names_nodes_and_asks_for_the_environment() {
    let s = screen("rollback-confirm");
    assert!(s.contains("Roll back askproai in production?"));
    assert!(s.contains("web-1          v1.1 → v1.0"));
    assert!(s.contains("web-2          stopped, stays on v1.0"));
    assert!(s.contains("3 other nodes are not touched."));
    assert!(s.contains("Type production to confirm"));
    insta::assert_snapshot!("rollback_confirm", s);
}

#[test]
fn rolling_back() {
    let s = screen("rolling-back");
    assert!(s.contains(" ROLLING BACK "));
    assert!(s.contains("↺ rolled back"));
    assert!(s.contains("v1.1 → v1.0"));
    insta::assert_snapshot!("rolling_back", s);
}

#[test]
fn rolled_back() {
    let s = screen("rolled-back");
    assert!(s.contains(" ROLLED BACK "));
    let grid: String = s.lines().skip(2).take(10).collect();
    assert!(!grid.contains("v1.1"), "no node is left on v1.1");
    assert_eq!(grid.matches("rolled back").count(), 2);
    insta::assert_snapshot!("rolled_back", s);
}

#[test]
fn failed_node() {
    let s = screen("failed-node");
    assert!(s.contains(" FAILED "));
    assert!(s.contains("✗ failed"));
    assert!(s.contains("GET /health answered 503 for 30s"));
    insta::assert_snapshot!("failed_node", s);
}

#[test]
fn a_rolled_back_node_says_what_its_rollback_followed() {
    use deckhand::event::{NodeState, StepResult};
    let mut s = fixtures::failed_node();
    s.state("web-3", NodeState::RollingBack);
    for p in ["switch", "restart_services", "health"] {
        s.step("web-3", p, StepResult::Ok, 400, None);
    }
    s.state("web-3", NodeState::RolledBack);
    let mut app = s.into_app();
    app.select(2);
    let screen = draw(&app, 120, 36);
    let rows: Vec<&str> = screen.lines().collect();
    let at = |needle: &str| {
        rows.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{screen}"))
    };
    // The health row now reads ok (the rollback's check), and the failure it followed is
    // named as such, after the rows, instead of reading like a fresh failure.
    let health = rows[at("│ ✓ health")];
    assert!(health.contains("ok"), "{screen}");
    assert!(
        !health.contains("503"),
        "a re-run row shows its own output, not the failed run's: {screen}"
    );
    let why = at("rolled back after: health timed out");
    assert!(why > at("│ ✓ health"), "{screen}");
}

#[test]
fn checklist_with_mixed_results() {
    let s = screen("checklist");
    for word in ["pass", "fail", "running", "unknown", "confirm", "pending"] {
        assert!(s.contains(word), "checklist shows {word}");
    }
    assert!(s.contains("0.02 %"));
    assert!(s.contains("5/5 nodes"));
    assert!(s.contains("Short-term (5-30 minutes)"));
    assert!(s.contains("Long-term (30+ minutes)"));
    insta::assert_snapshot!("checklist", s);
}

#[test]
fn help_overlay() {
    let s = screen("help");
    assert!(s.contains("Roll back the switched nodes (asks first)"));
    assert!(s.contains("Search the output"), "every section fits");
    insta::assert_snapshot!("help", s);
}

#[test]
fn node_output() {
    let s = screen("output");
    assert!(s.contains("Output · web-3"));
    assert!(s.contains("GET /health 503 Service Unavailable"));
    insta::assert_snapshot!("output", s);
}

#[test]
fn compact_grid_for_120_nodes() {
    let s = screen("large-fleet");
    assert!(s.contains("Load Balancer · 116/120 in rotation"));
    assert!(s.contains("healthy 40"));
    assert!(s.contains("failed 1"));
    assert!(s.contains("web-042"), "the selected node is named");
    insta::assert_snapshot!("large_fleet", s);
}

#[test]
fn too_small_terminal() {
    let app = scene("mid-rollout").expect("scene");
    let s = draw(&app, 70, 20);
    assert!(s.contains("at least 80×24; this one is 70×20"));
    assert!(s.contains("DEPLOYING"));
    insta::assert_snapshot!("too_small", s);
}

#[test]
fn ascii_fallback_draws_no_unicode() {
    let mut app = scene("mid-rollout").expect("scene");
    app.set_glyphs(Glyphs::ASCII);
    let s = draw(&app, 120, 36);
    assert!(s.is_ascii(), "ASCII mode leaks Unicode:\n{s}");
    assert!(s.contains("v1.0 -> v1.1"));
    insta::assert_snapshot!("ascii", s);
}

#[test]
fn resizing_reflows_the_grid() {
    let app = scene("mid-rollout").expect("scene");
    let wide = draw(&app, 160, 40);
    let narrow = draw(&app, 80, 40);
    // five boxes in one row when wide; web-5 wraps to a second row when narrow
    let same_row = |s: &str| {
        s.lines()
            .filter(|l| l.contains("web-1") && l.contains("web-5"))
            .count()
    };
    assert_eq!(same_row(&wide), 1);
    assert_eq!(same_row(&narrow), 0);
    let grid: Vec<&str> = narrow
        .lines()
        .take_while(|l| !l.contains("Phases"))
        .collect();
    assert!(
        grid.iter().any(|l| l.contains("web-5")),
        "web-5 is still drawn"
    );
}

#[test]
fn down_moves_by_the_row_the_last_frame_drew() {
    let down = Key {
        code: crossterm::event::KeyCode::Down,
        ctrl: false,
    };
    let mut app = scene("mid-rollout").expect("scene");
    // Wide: all five boxes in one row, so there is no row below web-1.
    let (_, wide) = draw_laid_out(&app, 160, 40);
    handle_key(&mut app, down, &wide);
    assert!(draw(&app, 160, 40).contains("Phases · web-1"));
    // Narrow: four boxes a row, web-5 wraps to the second row right below web-1.
    let (_, narrow) = draw_laid_out(&app, 80, 40);
    handle_key(&mut app, down, &narrow);
    let screen = draw(&app, 80, 40);
    assert!(screen.contains("Phases · web-5"), "{screen}");
}

#[test]
fn pressing_p_shows_pausing_at_once() {
    let mut app = scene("mid-rollout").expect("scene");
    handle_key(&mut app, key('p'), &Drawn::default());
    let s = draw(&app, 120, 36);
    assert!(s.contains(" PAUSING… "));
}

#[test]
fn manual_checklist_item_is_ticked_with_space() {
    let mut app = scene("checklist").expect("scene");
    let (before, drawn) = draw_laid_out(&app, 120, 36);
    assert!(before.contains("All critical paths tested"));
    let effects = handle_key(&mut app, key(' '), &drawn);
    assert_eq!(
        effects,
        vec![Effect::Send(deckhand::event::Control::Confirm {
            check: "All critical paths tested".into()
        })]
    );
    let after = draw(&app, 120, 36);
    assert!(after.contains("ticked: All critical paths tested"));
    let line = after
        .lines()
        .find(|l| l.contains("All critical paths tested"))
        .unwrap_or("");
    assert!(
        line.contains("pass") && line.contains("confirmed"),
        "{line}"
    );
}

#[test]
fn every_scene_draws_in_every_theme_and_size() {
    for name in fixtures::SCENES {
        for theme in ["dark", "light", "high-contrast", "monochrome"] {
            let mut app = scene(name).expect("scene");
            app.set_theme(deckhand::ui::theme::Theme::builtin(theme).expect("theme"));
            for (w, h) in [(80, 24), (120, 36), (200, 60), (40, 10)] {
                let _ = draw(&app, w, h);
            }
        }
    }
}

#[test]
fn a_journal_that_is_not_one_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("run.jsonl");
    let good = serde_json::to_string(&fixtures::mid_rollout().events[0]).expect("event");
    std::fs::write(&path, format!("{good}\n{{\"seq\": 2}}\n")).expect("write");
    let err = format!("{:#}", deckhand::ui::read_journal(&path).unwrap_err());
    assert!(err.contains("run.jsonl:2: not a deckhand event"), "{err}");
    std::fs::write(&path, format!("{good}\n")).expect("write");
    assert_eq!(deckhand::ui::read_journal(&path).expect("journal").len(), 1);
}

#[test]
fn checklist_headings_follow_the_inventory_windows_and_no_balancer_means_serving() {
    let mut s = fixtures::Script::new();
    let mut started = fixtures::started(3, false, true);
    if let deckhand::event::EventKind::Started {
        windows, balancer, ..
    } = &mut started
    {
        *windows = vec![
            ("immediate".into(), 8_000),
            ("short".into(), 360_000),
            ("long".into(), 0),
        ];
        *balancer = false;
    }
    s.push(started);
    let app = s.into_app();
    let screen = draw(&app, 120, 36);
    assert!(screen.contains("Immediate (8s)"), "{screen}");
    assert!(screen.contains("Short-term (6m)"), "{screen}");
    assert!(screen.contains("No load balancer"), "{screen}");
    assert!(
        screen.contains("● serving") && !screen.contains("in rotation"),
        "{screen}"
    );
}

#[test]
fn the_running_phase_stays_in_view_even_when_an_earlier_row_says_running() {
    use deckhand::event::{NodeState, StepResult};
    // More phases than the pane is tall; an early one printed "running migrations".
    let phases: Vec<String> = (1..=30).map(|i| format!("step_{i:02}")).collect();
    let mut started = fixtures::started(5, false, true);
    if let deckhand::event::EventKind::Started { phases: p, .. } = &mut started {
        *p = phases.clone();
    }
    let mut s = fixtures::Script::new();
    s.push(started);
    s.state("web-1", NodeState::Updating);
    for (i, p) in phases.iter().take(27).enumerate() {
        let line = (i == 2).then_some("running migrations");
        s.step("web-1", p, StepResult::Ok, 400, line);
    }
    s.begin("web-1", "step_28");
    let app = s.into_app();
    let screen = draw(&app, 120, 36);
    // The phases pane's row (the grid's box names the phase too, without the status word).
    assert!(
        screen
            .lines()
            .any(|l| l.contains("step_28") && l.contains("running")),
        "the running row is out of view:\n{screen}"
    );
}

#[test]
fn the_final_screen_says_where_the_time_went() {
    let s = screen("done");
    assert!(s.contains(" DONE "));
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(" time "))
        .expect("a time line");
    let line = lines[at];
    for part in [
        "1m06s",
        "steps 48.2s",
        "waiting 12.6s",
        "deckhand 5.6s",
        "preflight 1.9s",
        "network 1.3s",
    ] {
        assert!(line.contains(part), "{part} in {line:?}");
    }
    let below = lines[at + 1];
    assert!(
        below.contains("slowest phases: install_dependencies 32.0s")
            && below.contains("slowest nodes: "),
        "the slowest phases and nodes under it: {below:?}"
    );
    assert!(s.contains("esc home"), "from home, esc goes back:\n{s}");
    insta::assert_snapshot!("done", s);
}

#[test]
fn step_mode_says_one_step_runs_then_it_pauses_again() {
    let s = screen("stepping");
    assert!(s.contains(" STEPPING "));
    assert!(s.contains("step 1: each node in flight runs its next step"));
    insta::assert_snapshot!("stepping", s);
    // Paused, `s` asks for exactly one step.
    let mut app = fixtures::paused().into_app();
    let effects = handle_key(&mut app, key('s'), &Drawn::default());
    assert_eq!(effects, vec![Effect::Send(deckhand::event::Control::Step)]);
}

#[test]
fn a_watching_console_names_whose_run_it_is_and_sends_nothing() {
    let s = screen("watching");
    assert!(s.contains(" deckhand watch "));
    assert!(
        s.contains("WATCHING maria@ops-laptop's deployment of v1.1 · read-only"),
        "{s}"
    );
    assert!(!s.contains("R roll back") && !s.contains("a abort") && !s.contains("pause"));
    insta::assert_snapshot!("watching", s);
    let mut app = scene("watching").expect("scene");
    for c in "pRaysx ".chars() {
        assert!(
            !handle_key(&mut app, key(c), &Drawn::default())
                .iter()
                .any(|e| matches!(e, Effect::Send(_))),
            "{c} sent a control"
        );
    }
    let after = draw(&app, 120, 36);
    assert!(
        !after.contains("Roll back askproai"),
        "no dialog opens:\n{after}"
    );
    assert!(
        !after.contains("Abort the deployment"),
        "no dialog opens:\n{after}"
    );
}
