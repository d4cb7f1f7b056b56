//! Commands that look without deploying: `validate`, `plan`, `config`, `status`, `unlock`
//! (which removes a dead deployment's lock after asking), `replay`.

use std::path::Path;

use deckhand::engine::{self, status::NodeStatus};
use deckhand::exit;
use deckhand::headless::Format;
use deckhand::{plan, util};

use super::{build_plan, can_ask, check_release, confirm, Code, Ctx};

/// How alive a lock is, from its heartbeat's age.
pub(crate) fn age_note(age: Option<u64>) -> String {
    engine::remote::lock_age_note(age, engine::DEFAULT_STALE_AFTER)
}

pub(crate) fn validate(ctx: &Ctx) -> Code {
    let inv = ctx.load()?;
    println!(
        "{}: ok — app {}, {}, {} ({}), {}",
        inv.file.display(),
        inv.app.name,
        util::count(inv.nodes.len(), "node", "nodes"),
        util::count(inv.environments.len(), "environment", "environments"),
        inv.environments
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        util::count(inv.phases.len(), "phase", "phases")
    );
    Ok(exit::OK)
}

pub(crate) fn plan(ctx: &Ctx, env: &str, release: &str, output: Format) -> Code {
    let inv = ctx.load()?;
    if release != "RELEASE" {
        check_release(release)?;
    }
    let p = build_plan(&inv, env, release)?;
    match output {
        Format::Text => print!("{}", plan::render_text(&p, &inv)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default()),
    }
    Ok(exit::OK)
}

pub(crate) async fn config(ctx: &Ctx, env: &str, output: Format) -> Code {
    let (inv, e) = ctx.load_env(env)?;
    let read = deckhand::config::read(&inv, &e).await;
    let mut code = exit::OK;
    for n in &read {
        if let Err(err) = &n.keys {
            eprintln!("error: {}: {err}", n.node);
            code = exit::NOT_READY;
        }
    }
    let good: Vec<(&String, &Vec<deckhand::config::Resolved>)> = read
        .iter()
        .filter_map(|n| n.keys.as_ref().ok().map(|k| (&n.node, k)))
        .collect();
    match output {
        Format::Json => {
            let v: Vec<serde_json::Value> = good
                .iter()
                .map(|(n, r)| serde_json::json!({"node": n, "keys": r}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            for (n, r) in &good {
                println!("{n}:");
                for k in r.iter() {
                    println!("  {:<28} {:<13} {}", k.key, k.source, k.value);
                }
            }
        }
    }
    Ok(code)
}

/// A node's lock in the status table's words.
fn lock_column(s: &NodeStatus) -> String {
    match (&s.lock, s.locked, &s.error) {
        (_, _, Some(err)) => format!("unreachable: {err}"),
        (Some(l), _, _) => match &s.progress {
            Some(p) => format!(
                "held by {}{}; now: {}",
                l.describe(),
                age_note(s.lock_age_s),
                p.describe()
            ),
            None => format!("held by {}{}", l.describe(), age_note(s.lock_age_s)),
        },
        (None, true, _) => "held (holder unreadable)".into(),
        _ => "-".into(),
    }
}

pub(crate) async fn status(ctx: &Ctx, env: &str, output: Format) -> Code {
    let (inv, e) = ctx.load_env(env)?;
    let statuses = engine::status::read_status(&inv, &e.nodes).await;
    match output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&statuses).unwrap_or_default()
        ),
        Format::Text => {
            println!(
                "{:<14} {:<18} {:<12} {:<12} LOCK",
                "NODE", "HOST", "LIVE", "PREVIOUS"
            );
            for s in &statuses {
                println!(
                    "{:<14} {:<18} {:<12} {:<12} {}",
                    s.node,
                    s.host,
                    s.live_release.as_deref().unwrap_or("-"),
                    s.previous_release.as_deref().unwrap_or("-"),
                    lock_column(s)
                );
            }
        }
    }
    Ok(if statuses.iter().any(|s| !s.reachable) {
        exit::NOT_READY
    } else {
        exit::OK
    })
}

pub(crate) async fn history(ctx: &Ctx, env: &str, limit: Option<usize>, output: Format) -> Code {
    let (inv, e) = ctx.load_env(env)?;
    let h = deckhand::history::read(&inv, &e).await;
    for (node, why) in &h.unreachable {
        eprintln!("warning: {node} could not be read, its lines are missing: {why}");
    }
    match output {
        Format::Json => {
            let shown: Vec<_> = h
                .deployments
                .iter()
                .take(limit.unwrap_or(usize::MAX))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
        }
        Format::Text => print!("{}", deckhand::history::render_text(&h, limit)),
    }
    Ok(if h.unreachable.is_empty() {
        exit::OK
    } else {
        exit::NOT_READY
    })
}

pub(crate) async fn watch(ctx: &Ctx, env: &str, output: Format) -> Code {
    let (inv, e) = ctx.load_env(env)?;
    let ui = ctx.ui_for(&inv);
    let reader = engine::status::Reader::new(std::sync::Arc::new(inv));
    let mut events = deckhand::watch::spawn(reader, e);
    if super::headless_wanted(false) {
        let mut printer = deckhand::headless::Printer::new(std::io::stdout(), output);
        while let Some(ev) = events.recv().await {
            printer.print(&ev);
        }
        return Ok(exit::OK);
    }
    match deckhand::ui::watch(events, ui, env).await {
        Ok(_) => Ok(exit::OK),
        Err(err) => {
            eprintln!("error: {err:#}");
            Err(exit::FAILED)
        }
    }
}

pub(crate) async fn unlock(ctx: &Ctx, env: &str, yes: bool) -> Code {
    let (inv, e) = ctx.load_env(env)?;
    let statuses = engine::status::read_status(&inv, &e.nodes).await;
    let held: Vec<&NodeStatus> = statuses.iter().filter(|s| s.locked).collect();
    if held.is_empty() {
        println!("no node of {env} is locked");
        return Ok(exit::OK);
    }
    for s in &held {
        match &s.lock {
            Some(l) => println!(
                "{}: locked by {}{}",
                s.node,
                l.describe(),
                age_note(s.lock_age_s)
            ),
            None => println!("{}: locked (holder unreadable)", s.node),
        }
    }
    if !yes {
        if !can_ask() {
            eprintln!("error: removing a lock needs confirmation; add --yes once you are sure that deployment is dead");
            return Err(exit::BAD_INPUT);
        }
        if !confirm("Remove these locks? Only do this if that deployment is no longer running.") {
            eprintln!("nothing was changed");
            return Err(exit::FAILED);
        }
    }
    let names: Vec<String> = held.iter().map(|s| s.node.clone()).collect();
    let errors = engine::status::force_unlock(&inv, &names).await;
    if errors.is_empty() {
        println!("unlocked {}", util::count(names.len(), "node", "nodes"));
        Ok(exit::OK)
    } else {
        for e in errors {
            eprintln!("error: {e}");
        }
        Err(exit::FAILED)
    }
}

pub(crate) async fn replay(ctx: &Ctx, journal: &Path, speed: f64) -> Code {
    match deckhand::ui::replay(journal, ctx.ui.clone(), speed).await {
        Ok(_) => Ok(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            Err(exit::BAD_INPUT)
        }
    }
}
