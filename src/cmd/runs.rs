//! Commands that start a run: `deploy`, `promote`, `rollback`, `resume`, `demo`. Each checks
//! what it can before any node changes, asks where it must, starts the engine and follows the
//! run to its end (see `follow`).

use std::path::PathBuf;
use std::sync::Arc;

use deckhand::engine::{self, promote, RollbackTarget, RunOptions};
use deckhand::event::RunKind;
use deckhand::exit;
use deckhand::headless::Format;
use deckhand::resume::{self, Console, Found};
use deckhand::{demo, util};

use super::follow::follow;
use super::{
    ask, build_plan, can_ask, check_release, confirm, confirm_typed, headless_wanted, Code, Ctx,
};
use crate::RunArgs;

pub(crate) async fn deploy(ctx: &Ctx, env: &str, release: &str, run: RunArgs) -> Code {
    deploy_from(ctx, env, release, run, None).await
}

/// A deployment; `promote_from` names the environment whose verified release it ships.
async fn deploy_from(
    ctx: &Ctx,
    env: &str,
    release: &str,
    run: RunArgs,
    promote_from: Option<&str>,
) -> Code {
    let RunArgs {
        headless,
        yes,
        watch,
        output,
        step,
    } = run;
    check_release(release)?;
    let inv = ctx.load()?;
    let p = build_plan(&inv, env, release)?;
    let headless = headless_wanted(headless);
    if headless && !p.gates.is_empty() && !yes {
        eprintln!(
            "error: this deployment waits for a promote after batch {} (pause_after_first), and a headless run has nobody to promote it\n  = help: add --yes to pass the gate, or run in a terminal without --headless",
            p.gates[0] + 1
        );
        return Err(exit::BAD_INPUT);
    }
    if headless && step {
        eprintln!(
            "error: --step waits for a key before each step, and a headless run has nobody to press it\n  = help: run in a terminal without --headless"
        );
        return Err(exit::BAD_INPUT);
    }
    let opts = RunOptions {
        auto_promote: yes,
        headless,
        watch,
        step,
        promote_from: promote_from.map(String::from),
        ..ctx.run_options()
    };
    let ui = ctx.ui_for(&inv);
    let h = engine::spawn_deploy(Arc::new(inv), p, opts).map_err(|e| {
        eprintln!("error: {e}");
        exit::FAILED
    })?;
    let hint = ctx.resume_hint(env);
    Ok(follow(h, headless, ui, output, RunKind::Deploy, &hint).await)
}

pub(crate) async fn promote(ctx: &Ctx, from: &str, to: &str, run: RunArgs) -> Code {
    let (inv, src) = ctx.load_env(from)?;
    let statuses = engine::status::read_status(&inv, &src.nodes).await;
    let release = promote::promotable(from, &statuses).map_err(|e| {
        eprintln!("error: {e}");
        exit::NOT_READY
    })?;
    eprintln!("promote: {release} passed {from}'s checklist; deploying it to {to}");
    deploy_from(ctx, to, &release, run, Some(from)).await
}

pub(crate) async fn rollback(
    ctx: &Ctx,
    env: &str,
    to: Option<String>,
    headless: bool,
    yes: bool,
    output: Format,
) -> Code {
    if let Some(r) = &to {
        check_release(r)?;
    }
    let inv = ctx.load()?;
    let label = to.clone().unwrap_or_else(|| "previous".into());
    let p = build_plan(&inv, env, &label)?;
    let headless = headless_wanted(headless);
    if !yes {
        if headless || !can_ask() {
            eprintln!("error: a rollback changes every node of {env}; confirm with --yes when running headless");
            return Err(exit::BAD_INPUT);
        }
        let statuses = engine::status::read_status(&inv, &p.nodes).await;
        let lines: Vec<String> = engine::status::rollback_preview(&statuses, to.as_deref())
            .into_iter()
            .map(|r| format!("  {}: {} → {}", r.node, r.from, r.to))
            .collect();
        let question = format!("Roll back {env}?\n{}", lines.join("\n"));
        let protected = inv.environment(env).map(|e| e.protected).unwrap_or(false);
        let ok = if protected {
            confirm_typed(env, &question)
        } else {
            confirm(&question)
        };
        if !ok {
            eprintln!("nothing was changed");
            return Err(exit::FAILED);
        }
    }
    let target = match to {
        Some(r) => RollbackTarget::Release(r),
        None => RollbackTarget::Previous,
    };
    let opts = RunOptions {
        auto_promote: true,
        headless,
        ..ctx.run_options()
    };
    let ui = ctx.ui_for(&inv);
    let h = engine::spawn_rollback(Arc::new(inv), p, target, opts).map_err(|e| {
        eprintln!("error: {e}");
        exit::FAILED
    })?;
    let hint = ctx.resume_hint(env);
    Ok(follow(h, headless, ui, output, RunKind::Rollback, &hint).await)
}

pub(crate) async fn resume(ctx: &Ctx, env: &str, cont: bool, rollback: bool, run: RunArgs) -> Code {
    let RunArgs {
        headless,
        yes,
        watch,
        output,
        step,
    } = run;
    let (inv, e) = ctx.load_env(env)?;
    let dir = deckhand::journal::default_journal_dir();
    let found = resume::find(&dir, &inv.app.name, env).map_err(|err| {
        eprintln!("error: {err}");
        exit::FAILED
    })?;
    let int = match found {
        Found::Nothing => {
            println!(
                "nothing to resume: no journal of {} in {env} under {}",
                inv.app.name,
                dir.display()
            );
            return Ok(exit::OK);
        }
        Found::Finished {
            journal,
            outcome,
            deployment,
        } => {
            println!(
                "nothing to resume: the last deployment of {env} finished ({outcome}); journal {}",
                journal.display()
            );
            // A run that finished but could not release its lock everywhere (the connection
            // to a node dropped as it did) left it behind: its own lock, and nothing runs.
            let done = engine::status::unlock_stale(
                &inv,
                &e.nodes,
                &deployment,
                std::time::Duration::ZERO,
            )
            .await;
            if !done.removed.is_empty() {
                println!(
                    "released the lock that deployment left on {}",
                    done.removed.join(", ")
                );
            }
            for left in &done.left {
                eprintln!("warning: {left}");
            }
            if !done.errors.is_empty() {
                eprintln!(
                    "error: could not release that deployment's lock on {}",
                    done.errors.join("; ")
                );
                return Err(exit::NOT_READY);
            }
            return Ok(exit::OK);
        }
        Found::Interrupted(i) => i,
    };
    if int.kind != RunKind::Deploy {
        eprintln!(
            "error: the interrupted run was a rollback; run `deckhand rollback {env}` again to finish it (journal {})",
            int.journal.display()
        );
        return Err(exit::FAILED);
    }
    for p in &int.problems {
        eprintln!("warning: {p} (not trusted)");
    }
    println!(
        "interrupted: deployment {} of {} to {env}; last recorded: {}\njournal: {}",
        int.deployment,
        int.release,
        int.last,
        int.journal.display()
    );
    let statuses = engine::status::read_status(&inv, &e.nodes).await;
    println!("{:<14} {:<12} {:<12} LOCK", "NODE", "BEFORE", "NOW");
    for r in resume::rows(&int, &statuses) {
        println!("{:<14} {:<12} {:<12} {}", r.node, r.before, r.now, r.lock);
    }
    if statuses.iter().any(|s| !s.reachable) {
        eprintln!("error: some nodes cannot be reached; resume once they answer");
        return Err(exit::NOT_READY);
    }
    // Never take over a deployment whose console still runs it.
    match resume::console(
        &int.deployment,
        &statuses,
        &util::hostname(),
        engine::DEFAULT_STALE_AFTER,
        resume::deckhand_process_alive,
    ) {
        Console::Gone => {}
        Console::Alive(holder) => {
            eprintln!(
                "error: deployment {} is still running: its console is alive ({holder}); nothing was changed\n  = help: follow it with `deckhand status {env}`; resume only once that console is gone",
                int.deployment
            );
            return Err(exit::LOCK_HELD);
        }
        Console::Stale(holder) if !ctx.take_over_stale => {
            eprintln!(
                "error: deployment {}'s console stopped refreshing its lock ({holder}); nothing was changed\n  = help: once you know that console is gone, add --take-over-stale",
                int.deployment
            );
            return Err(exit::LOCK_HELD);
        }
        Console::Stale(holder) => {
            eprintln!(
                "taking over deployment {} from its stale console ({holder})",
                int.deployment
            );
        }
    }
    let choice = if cont {
        'c'
    } else if rollback {
        'r'
    } else if headless || !can_ask() {
        eprintln!("error: choose --continue (carry {} through) or --rollback (back to the releases before it)", int.release);
        return Err(exit::BAD_INPUT);
    } else {
        match ask(&format!(
            "[c]ontinue the deployment of {}, [r]oll back, or [q]uit? ",
            int.release
        ))
        .as_str()
        {
            "c" | "continue" => 'c',
            "r" | "rollback" => 'r',
            _ => {
                eprintln!("nothing was changed");
                return Err(exit::FAILED);
            }
        }
    };
    let headless = headless_wanted(headless);
    let opts = RunOptions {
        resume_id: Some(int.deployment.clone()),
        step: step && !headless,
        watch,
        headless,
        auto_promote: yes || choice == 'r',
        ..ctx.run_options()
    };
    let ui = ctx.ui_for(&inv);
    let hint = ctx.resume_hint(env);
    let inv = Arc::new(inv);
    let started = if choice == 'c' {
        let p = build_plan(&inv, env, &int.release)?;
        if headless && !p.gates.is_empty() && !yes {
            eprintln!("error: this deployment has a gate; add --yes to pass it headless");
            return Err(exit::BAD_INPUT);
        }
        engine::spawn_deploy(inv, p, opts).map(|h| (h, RunKind::Deploy))
    } else {
        let p = build_plan(&inv, env, "previous")?;
        engine::spawn_rollback(inv, p, resume::rollback_target(&int), opts)
            .map(|h| (h, RunKind::Rollback))
    };
    let (h, kind) = started.map_err(|err| {
        eprintln!("error: {err}");
        exit::FAILED
    })?;
    Ok(follow(h, headless, ui, output, kind, &hint).await)
}

/// The demo's options (see `deckhand demo --help`).
pub(crate) struct DemoArgs {
    pub headless: bool,
    pub nodes: usize,
    pub dir: Option<PathBuf>,
    pub fail_node: Option<String>,
    pub fast: bool,
    pub output: Format,
}

pub(crate) async fn demo(ctx: &Ctx, a: DemoArgs) -> Code {
    let dir = match a.dir {
        Some(d) => d,
        None => match tempfile::Builder::new().prefix("deckhand-demo-").tempdir() {
            Ok(t) => t.keep(),
            Err(e) => {
                eprintln!("error: cannot create a temp dir for the demo: {e}");
                return Err(exit::FAILED);
            }
        },
    };
    let d = demo::prepare(&dir, a.nodes, a.fail_node.as_deref(), a.fast)
        .await
        .map_err(|e| {
            eprintln!("error: {e:#}");
            exit::BAD_INPUT
        })?;
    eprintln!(
        "demo: {} with {} live under {}\n      inventory: {}",
        util::count(d.nodes.len(), "node", "nodes"),
        demo::FROM,
        d.dir.join("nodes").display(),
        d.inventory.display()
    );
    let inv = demo::load(&d.inventory).map_err(|e| {
        eprintln!("error: {e:#}");
        exit::FAILED
    })?;
    let p = build_plan(&inv, demo::ENV, demo::TO)?;
    let headless = headless_wanted(a.headless);
    let opts = RunOptions {
        // Nobody promotes a headless demo: its gate passes by itself.
        auto_promote: headless,
        headless,
        watch: a.fast.then_some(std::time::Duration::ZERO),
        ..ctx.run_options()
    };
    let ui = ctx.ui_for(&inv);
    let hint = super::resume_hint(Some(&d.inventory), demo::ENV);
    let home_inv = inv.clone();
    let code = match engine::spawn_deploy(Arc::new(inv), p, opts) {
        Ok(h) if !headless => {
            // The demo ends on the home screen (esc after the run): history, roll back, deploy.
            match deckhand::ui::run_console(h, ui, deckhand::ui::Opened::Home).await {
                Ok(left) => match left.ending {
                    deckhand::ui::Ending::Finished(outcome) if left.home => {
                        let demo_ctx = Ctx {
                            inventory: Some(d.inventory.clone()),
                            ui: ctx.ui.clone(),
                            lock_wait: ctx.lock_wait,
                            take_over_stale: ctx.take_over_stale,
                        };
                        let code = exit::of_run(RunKind::Deploy, outcome);
                        match super::home::home_with(&demo_ctx, home_inv, Some(code)).await {
                            Ok(c) | Err(c) => c,
                        }
                    }
                    deckhand::ui::Ending::Finished(outcome) => {
                        eprintln!("deckhand: {}", outcome.word());
                        exit::of_run(RunKind::Deploy, outcome)
                    }
                    deckhand::ui::Ending::LeftPaused => {
                        eprintln!(
                            "paused and leaving: nothing is running; every node is on a whole release and the lock stays held.\n  = help: continue or roll back with `{hint} --continue` or `{hint} --rollback`"
                        );
                        exit::FAILED
                    }
                },
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit::FAILED
                }
            }
        }
        Ok(h) => follow(h, headless, ui, a.output, RunKind::Deploy, &hint).await,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    };
    eprintln!(
        "demo: try `deckhand -i {} status demo`",
        super::shell_path(&d.inventory)
    );
    Ok(code)
}
