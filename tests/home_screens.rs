//! Snapshot tests of the home screen, each built from fleet answers fed through the same
//! `Home::apply` a live read uses, drawn into a ratatui TestBackend; and what the operator must
//! be able to read on each.

use deckhand::ui::fixtures::home_scene;
use deckhand::ui::home::{self, Home};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn draw(h: &Home, w: u16, hgt: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, hgt)).expect("test terminal");
    t.draw(|f| {
        let area = f.area();
        home::draw(h, area, f.buffer_mut());
    })
    .expect("draw");
    t.backend().to_string()
}

fn screen(name: &str) -> String {
    draw(&home_scene(name).expect("scene exists"), 120, 36)
}

#[test]
fn home_shows_every_environment_with_live_releases_locks_and_the_last_run() {
    let s = screen("home");
    for want in [
        "3 environments · 7 nodes",
        // staging: a run in progress, how far it is.
        "deploying v1.2",
        "ann@jump-1 · batch 2/2 · staging-2 switch · heartbeat 4s",
        "v1.2 ×1 · v1.1 ×1 MIXED",
        // canary: a lock nobody refreshes.
        "STALE 12 min",
        // production: its nodes, one unreachable and why.
        "UNREACHABLE: ssh: connect to host 10.0.0.16 port 22: Connection timed out",
        "balancer: 3/4 in rotation",
        "v1.1 v1.0 v0.9",
        // its history, newest first, with the failed node.
        "v1.1 → v1.2",
        "rolled back",
        "production-2",
    ] {
        assert!(s.contains(want), "{want:?} missing:\n{s}");
    }
    insta::assert_snapshot!("home", s);
}

#[test]
fn the_history_pane_lists_runs_newest_first() {
    let s = screen("home-history");
    let rows: Vec<&str> = s.lines().filter(|l| l.contains("2026-01-01 0")).collect();
    assert_eq!(rows.len(), 2, "{s}");
    assert!(
        rows[0].contains("07:05") && rows[0].contains("rolled back"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("06:30") && rows[1].contains("deployed"),
        "{}",
        rows[1]
    );
    insta::assert_snapshot!("home_history", s);
}

#[test]
fn the_rollback_dialog_names_each_node_and_its_release_and_asks_for_the_name() {
    let s = screen("home-rollback");
    assert!(s.contains("Roll back askproai in production?"));
    assert!(s.contains("production-1   v1.1 → v1.0"), "{s}");
    assert!(s.contains("Type production to confirm"), "{s}");
    assert!(s.contains("> produc"), "{s}");
    insta::assert_snapshot!("home_rollback", s);
}

#[test]
fn the_first_paint_of_200_nodes_comes_before_any_node_answered() {
    let s = screen("home-first-paint");
    assert!(s.contains("8 environments · 200 nodes"), "{s}");
    assert!(s.contains("reading 0/200"), "{s}");
    assert!(s.contains("… reading"), "{s}");
    insta::assert_snapshot!("home_first_paint", s);
}
