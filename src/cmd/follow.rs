//! Following a run to its end: in the console, or headless with the line printer. The outcome
//! becomes the exit code; a run left paused (quit, or a signal) keeps its lock for `resume`.

use std::io::{BufRead, IsTerminal, Write};

use deckhand::engine::{Control, EventKind, Outcome, RunHandle};
use deckhand::event::RunKind;
use deckhand::exit;
use deckhand::headless::{Format, Printer};
use deckhand::ui::{UiOptions, SIGNAL_GRACE};
use deckhand::util;

/// Follow a run in the console or headless.
pub(crate) async fn follow(
    h: RunHandle,
    headless: bool,
    ui: UiOptions,
    output: Format,
    kind: RunKind,
    resume_hint: &str,
) -> i32 {
    if headless {
        drive(h, output, kind, resume_hint).await
    } else {
        console(h, ui, kind, resume_hint).await
    }
}

/// Ask at a gate, on the terminal: promote, roll back or abort.
fn ask_at_gate(controls: tokio::sync::mpsc::UnboundedSender<Control>) {
    tokio::task::spawn_blocking(move || loop {
        eprint!("promote and continue? [y = promote, r = roll back, a = abort] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let c = match line.trim() {
            "y" | "yes" => Control::Promote,
            "r" => Control::Rollback,
            "a" => Control::Abort,
            _ => continue,
        };
        let _ = controls.send(c);
        return;
    });
}

/// Follow a run in the console until the operator leaves; the outcome becomes the exit code.
/// A console left while the run is paused (quit, or a signal) keeps the lock for `resume`.
pub(crate) async fn console(h: RunHandle, ui: UiOptions, kind: RunKind, resume_hint: &str) -> i32 {
    match deckhand::ui::run_until_left(h, ui).await {
        Ok(deckhand::ui::Ending::Finished(outcome)) => {
            eprintln!("deckhand: {}", outcome.word());
            exit::of_run(kind, outcome)
        }
        Ok(deckhand::ui::Ending::LeftPaused) => {
            say_left_paused(resume_hint);
            exit::FAILED
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILED
        }
    }
}

/// Say that the run was left paused, with the lock held, and how to go on.
fn say_left_paused(resume_hint: &str) {
    eprintln!(
        "paused and leaving: nothing is running; every node is on a whole release and the lock stays held.\n  = help: continue or roll back with `{resume_hint} --continue` or `{resume_hint} --rollback`"
    );
}

/// Follow a run to its end with the line printer. SIGINT, SIGTERM or SIGHUP pause it at the
/// next step boundary and leave with the lock held, saying how to resume; a second signal aborts.
pub(crate) async fn drive(
    mut h: RunHandle,
    output: Format,
    kind: RunKind,
    resume_hint: &str,
) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let mut printer = Printer::new(std::io::stdout(), output);
    let controls = h.controls.clone();
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut finished_msg = None;
    let mut sigs: Vec<(&str, Option<tokio::signal::unix::Signal>)> = vec![
        ("SIGINT", signal(SignalKind::interrupt()).ok()),
        ("SIGTERM", signal(SignalKind::terminate()).ok()),
        ("SIGHUP", signal(SignalKind::hangup()).ok()),
    ];
    let mut leaving: Option<tokio::time::Instant> = None;
    let mut aborted = false;
    loop {
        let any_signal = async {
            let futs = sigs.iter_mut().map(|(name, s)| {
                Box::pin(async move {
                    match s.as_mut() {
                        Some(s) => {
                            s.recv().await;
                            *name
                        }
                        None => std::future::pending::<&str>().await,
                    }
                })
            });
            futures::future::select_all(futs).await.0
        };
        let grace = async {
            match leaving {
                Some(t) if !aborted => tokio::time::sleep_until(t + SIGNAL_GRACE).await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            ev = h.events.recv() => match ev {
                Some(e) => {
                    if let EventKind::Finished { outcome, message, .. } = &e.kind {
                        finished_msg = Some((*outcome, message.clone()));
                    }
                    printer.print(&e);
                    if leaving.is_some() && !aborted && matches!(e.kind, EventKind::Paused) {
                        say_left_paused(resume_hint);
                        return exit::FAILED;
                    }
                    if interactive && leaving.is_none() && matches!(e.kind, EventKind::Gate { .. }) {
                        ask_at_gate(controls.clone());
                    }
                }
                None => break,
            },
            name = any_signal => {
                if leaving.is_none() {
                    leaving = Some(tokio::time::Instant::now());
                    eprintln!("{name}: pausing at the next step boundary, then leaving (send it again to abort now)");
                    let _ = controls.send(Control::Interrupt { reason: format!("{name} received") });
                } else if !aborted {
                    aborted = true;
                    eprintln!("{name} again: aborting — running steps are killed, unfinished releases removed, the lock released");
                    let _ = controls.send(Control::Abort);
                }
            }
            _ = grace => {
                aborted = true;
                eprintln!("the running step did not end within {}; aborting it", util::format_duration(SIGNAL_GRACE));
                let _ = controls.send(Control::Abort);
            }
        }
    }
    let outcome = h.done.await.unwrap_or(Outcome::Failed);
    if let Some((_, msg)) = &finished_msg {
        if output == Format::Text && !std::io::stdout().is_terminal() {
            // The printer already wrote it to stdout; repeat on stderr for people who only see that.
            eprintln!("{}: {msg}", outcome.word());
        }
    }
    exit::of_run(kind, outcome)
}
