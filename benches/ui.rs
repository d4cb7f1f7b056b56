//! Console benchmarks: one full frame for fleets of 10, 100 and 500 nodes, a burst of engine
//! events folded into the state, the path from the `p` key to a frame that shows PAUSING, and
//! the home screen: its first paint with 200 nodes in 8 environments before any node answered,
//! a frame once they answered, and 200 answers folded in.
//!
//! Run with `cargo bench --bench ui`; figures are kept in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use crossterm::event::KeyCode;
use deckhand::ui::app::App;
use deckhand::ui::fixtures;
use deckhand::ui::input::handle_key;
use deckhand::ui::keys::Key;
use deckhand::ui::view::{self, Drawn};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn fleet(n: usize) -> App {
    let mut app = fixtures::large_fleet(n).into_app();
    app.select(n / 3);
    app
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for n in [10usize, 100, 500] {
        let mut app = fleet(n);
        let mut term = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // A new spinner frame each time, so every frame really changes.
                app.next_frame();
                term.draw(|f| {
                    let area = f.area();
                    black_box(view::draw(&app, None, area, f.buffer_mut()));
                })
                .expect("draw");
                black_box(term.backend().buffer().area);
            })
        });
    }
    group.finish();
    // The console's own drawing alone, without ratatui's diff against the previous frame.
    let mut group = c.benchmark_group("draw only");
    for n in [10usize, 500] {
        let mut app = fleet(n);
        let area = ratatui::layout::Rect::new(0, 0, 160, 48);
        let mut buf = ratatui::buffer::Buffer::empty(area);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                app.next_frame();
                buf.reset();
                black_box(view::draw(&app, None, area, &mut buf));
                black_box(&buf);
            })
        });
    }
    group.finish();
}

fn reducer(c: &mut Criterion) {
    let script = fixtures::large_fleet(500);
    c.bench_function("apply/500-node burst", |b| {
        b.iter(|| {
            let mut app = App::new(
                deckhand::ui::theme::Theme::default_theme(),
                deckhand::ui::theme::Glyphs::UNICODE,
            );
            for e in &script.events {
                app.apply(e);
            }
            black_box(app.events_seen())
        })
    });
}

fn key_to_pausing(c: &mut Criterion) {
    let base = fixtures::mid_rollout();
    let mut term = Terminal::new(TestBackend::new(120, 36)).expect("terminal");
    c.bench_function("key p to PAUSING on screen", |b| {
        b.iter_batched(
            || base.into_app(),
            |mut app| {
                let key = Key {
                    code: KeyCode::Char('p'),
                    ctrl: false,
                };
                handle_key(&mut app, key, &Drawn::default());
                term.draw(|f| {
                    let area = f.area();
                    view::draw(&app, None, area, f.buffer_mut());
                })
                .expect("draw");
                let top = term.backend().buffer().content[100..120]
                    .iter()
                    .map(|c| c.symbol())
                    .collect::<String>();
                assert!(top.contains("PAUSING"), "{top}");
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn home(c: &mut Criterion) {
    use deckhand::ui::home::{self, Home};
    let mut group = c.benchmark_group("home");
    // The first paint: the inventory read, nothing answered yet.
    let mut term = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    group.bench_function("first paint, 200 nodes in 8 environments", |b| {
        b.iter(|| {
            let h = fixtures::home_scene("home-first-paint").expect("scene");
            term.draw(|f| {
                let area = f.area();
                home::draw(&h, area, f.buffer_mut());
            })
            .expect("draw");
            black_box(term.backend().buffer().area);
        })
    });
    // Every node answered: 200 answers folded in, then frames.
    let answers: Vec<deckhand::fleet::FleetNews> = (1..=8)
        .flat_map(|e| {
            (1..=25).map(move |i| {
                let mut s = fixtures::node_status(
                    &format!("env{e}-{i}"),
                    "10.0.0.1",
                    "v1.1",
                    &["v1.1", "v1.0", "v0.9"],
                );
                s.history = vec![];
                deckhand::fleet::FleetNews::Node(Box::new(s))
            })
        })
        .collect();
    group.bench_function("200 answers folded in", |b| {
        b.iter_batched(
            || {
                (
                    fixtures::home_scene("home-first-paint").expect("scene"),
                    answers.clone(),
                )
            },
            |(mut h, answers): (Home, Vec<deckhand::fleet::FleetNews>)| {
                for a in answers {
                    h.apply(a);
                }
                black_box(h.envs.len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut answered = fixtures::home_scene("home-first-paint").expect("scene");
    for a in answers.clone() {
        answered.apply(a);
    }
    group.bench_function("frame, 200 nodes answered", |b| {
        b.iter(|| {
            term.draw(|f| {
                let area = f.area();
                home::draw(&answered, area, f.buffer_mut());
            })
            .expect("draw");
            black_box(term.backend().buffer().area);
        })
    });
    let scene = fixtures::home_scene("home").expect("scene");
    group.bench_function("frame, the home scene", |b| {
        b.iter(|| {
            term.draw(|f| {
                let area = f.area();
                home::draw(&scene, area, f.buffer_mut());
            })
            .expect("draw");
            black_box(term.backend().buffer().area);
        })
    });
    group.finish();
}

criterion_group!(benches, frames, reducer, key_to_pausing, home);
criterion_main!(benches);
