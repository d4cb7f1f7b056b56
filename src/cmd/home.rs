//! The home screen's loop (`deckhand`, `deckhand console`, and the demo after its run): show
//! home, carry out what the operator chose through the same engine, plans, rollback targets and
//! journal as the command line, and come back with the result on the flash line. Without a
//! terminal, every environment's status is printed instead, and it says so.

use std::io::IsTerminal;
use std::sync::Arc;

use deckhand::engine::status::{self, Reader};
use deckhand::engine::{self, promote, RollbackTarget, RunHandle, RunOptions};
use deckhand::event::{Level, RunKind};
use deckhand::exit;
use deckhand::inventory::Inventory;
use deckhand::ui::home::{Home, HomeExit};
use deckhand::ui::{self, Ending, Opened};

use super::{Code, Ctx};

/// `deckhand` with no command, or `deckhand console`.
pub(crate) async fn home(ctx: &Ctx) -> Code {
    if let Err(e) = ctx.inventory_path() {
        eprintln!("error: {e}\n  = help: `deckhand demo` shows deckhand on local demo nodes; `deckhand --help` lists every command");
        return Err(exit::BAD_INPUT);
    }
    let inv = ctx.load()?;
    if !std::io::stdout().is_terminal() {
        return print_all(&inv).await;
    }
    home_with(ctx, inv, None).await
}

fn strategy_word(s: &deckhand::inventory::Strategy) -> &'static str {
    match s {
        deckhand::inventory::Strategy::Rolling => "rolling",
        deckhand::inventory::Strategy::BlueGreen { .. } => "blue-green",
        deckhand::inventory::Strategy::Canary { .. } => "canary",
    }
}

/// Without a terminal: every environment's nodes, as `status` prints them.
async fn print_all(inv: &Inventory) -> Code {
    println!(
        "no terminal: printing every environment's status instead of the home screen (run `deckhand` in a terminal for it)"
    );
    let mut code = exit::OK;
    for e in &inv.environments {
        println!(
            "\n{} ({}, {}):",
            e.name,
            strategy_word(&e.strategy),
            deckhand::util::count(e.nodes.len(), "node", "nodes")
        );
        let statuses = status::read_status(inv, &e.nodes).await;
        for s in &statuses {
            let lock = match (&s.lock, &s.error) {
                (_, Some(err)) => {
                    code = exit::NOT_READY;
                    format!("UNREACHABLE: {err}")
                }
                (Some(l), _) => match &s.progress {
                    Some(p) => format!("locked by {}@{} ({})", l.who, l.host, p.describe()),
                    None => format!("locked by {}@{}", l.who, l.host),
                },
                (None, None) => "free".into(),
            };
            println!(
                "  {:<14} {:<12} {:<12} {lock}",
                s.node,
                s.live_release.as_deref().unwrap_or("-"),
                s.previous_release.as_deref().unwrap_or("-"),
            );
        }
    }
    Ok(code)
}

/// The home screen for `inv`; `code` is the exit code to leave with when nothing else decides
/// it (the demo's run).
pub(crate) async fn home_with(ctx: &Ctx, inv: Inventory, code: Option<i32>) -> Code {
    let ui_opts = ctx.ui_for(&inv);
    let mut home = Home::with_options(&inv, &ui_opts).map_err(|e| {
        eprintln!("error: {e:#}");
        exit::BAD_INPUT
    })?;
    let inv = Arc::new(inv);
    let reader = Reader::new(inv.clone());
    let mut code = code.unwrap_or(exit::OK);
    loop {
        let chosen = ui::home::show(&mut home, &reader).await.map_err(|e| {
            eprintln!("error: {e:#}");
            exit::FAILED
        })?;
        match chosen {
            HomeExit::Quit => return Ok(code),
            HomeExit::Deploy { env, release } => {
                let started = start_deploy(ctx, &inv, &env, &release, None);
                match follow(ctx, started, &ui_opts, &env, RunKind::Deploy, &mut home).await {
                    Some(c) => return Ok(c),
                    None => code = exit::OK,
                }
            }
            HomeExit::Promote { from, to } => {
                let src = inv.environment(&from).cloned();
                let statuses = match &src {
                    Some(e) => status::read_status(&inv, &e.nodes).await,
                    None => vec![],
                };
                let started = promote::promotable(&from, &statuses)
                    .map_err(|e| e.to_string())
                    .and_then(|release| start_deploy(ctx, &inv, &to, &release, Some(&from)));
                if let Some(c) =
                    follow(ctx, started, &ui_opts, &to, RunKind::Deploy, &mut home).await
                {
                    return Ok(c);
                }
            }
            HomeExit::Rollback { env } => {
                let started = deckhand::plan::build(&inv, &env, "previous")
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        let opts = RunOptions {
                            auto_promote: true,
                            ..ctx.run_options()
                        };
                        engine::spawn_rollback(inv.clone(), p, RollbackTarget::Previous, opts)
                            .map_err(|e| e.to_string())
                    });
                if let Some(c) =
                    follow(ctx, started, &ui_opts, &env, RunKind::Rollback, &mut home).await
                {
                    return Ok(c);
                }
            }
            HomeExit::Unlock { env, deployment } => {
                let nodes = inv
                    .environment(&env)
                    .map(|e| e.nodes.clone())
                    .unwrap_or_default();
                let done =
                    status::unlock_stale(&inv, &nodes, &deployment, engine::DEFAULT_STALE_AFTER)
                        .await;
                let mut said = format!(
                    "unlocked {} of {env} (the stale lock of deployment {deployment})",
                    deckhand::util::count(done.removed.len(), "node", "nodes")
                );
                if !done.left.is_empty() {
                    said.push_str(&format!("; left: {}", done.left.join("; ")));
                }
                if done.errors.is_empty() {
                    let level = if done.left.is_empty() {
                        Level::Info
                    } else {
                        Level::Warn
                    };
                    home.flash(level, said);
                } else {
                    home.flash(
                        Level::Error,
                        format!("{said}; failed: {}", done.errors.join("; ")),
                    );
                }
            }
            HomeExit::Watch { env } => {
                if let Some(e) = inv.environment(&env).cloned() {
                    let events = deckhand::watch::spawn(reader.clone(), e);
                    match ui::watch(events, ui_opts.clone(), &env).await {
                        Ok(ui::Closed::Signal) => return Ok(code),
                        Ok(ui::Closed::Asked) => {}
                        Err(err) => home.flash(Level::Error, format!("watch: {err:#}")),
                    }
                }
            }
            HomeExit::Replay { journal } => {
                match ui::replay(&journal, ui_opts.clone(), 1.0).await {
                    Ok(ui::Closed::Signal) => return Ok(code),
                    Ok(ui::Closed::Asked) => {}
                    Err(err) => home.flash(Level::Error, format!("replay: {err:#}")),
                }
            }
        }
    }
}

/// Start a deployment as `deploy` does (the plan confirmed on screen), or say why not.
fn start_deploy(
    ctx: &Ctx,
    inv: &Arc<Inventory>,
    env: &str,
    release: &str,
    promote_from: Option<&str>,
) -> Result<RunHandle, String> {
    if !deckhand::util::valid_release(release) {
        return Err(format!("release name {release:?} is not allowed"));
    }
    let p = deckhand::plan::build(inv, env, release).map_err(|e| e.to_string())?;
    let opts = RunOptions {
        promote_from: promote_from.map(String::from),
        ..ctx.run_options()
    };
    engine::spawn_deploy(inv.clone(), p, opts).map_err(|e| e.to_string())
}

/// Follow a run started from home in the run screen. None: back home (the outcome on the flash
/// line); Some(code): leave deckhand (the run was left paused, its lock held for `resume`).
async fn follow(
    ctx: &Ctx,
    started: Result<RunHandle, String>,
    ui_opts: &ui::UiOptions,
    env: &str,
    kind: RunKind,
    home: &mut Home,
) -> Option<i32> {
    let h = match started {
        Ok(h) => h,
        Err(e) => {
            home.flash(Level::Error, format!("nothing was started: {e}"));
            return None;
        }
    };
    match ui::run_console(h, ui_opts.clone(), Opened::Home).await {
        Ok(left) => match left.ending {
            Ending::Finished(outcome) => {
                let level = match exit::of_run(kind, outcome) {
                    0 => Level::Info,
                    _ => Level::Warn,
                };
                home.flash(level, format!("{env}: {}", outcome.word()));
                if left.home {
                    None
                } else {
                    eprintln!("deckhand: {}", outcome.word());
                    Some(exit::of_run(kind, outcome))
                }
            }
            Ending::LeftPaused => {
                let hint = ctx.resume_hint(env);
                eprintln!(
                    "paused and leaving: nothing is running; every node is on a whole release and the lock stays held.\n  = help: continue or roll back with `{hint} --continue` or `{hint} --rollback`"
                );
                Some(exit::FAILED)
            }
        },
        Err(e) => {
            home.flash(Level::Error, format!("{e:#}"));
            None
        }
    }
}
