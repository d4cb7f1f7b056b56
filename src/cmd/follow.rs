//! Following a run to its end: in the console, or headless with the line printer. The outcome
//! becomes the exit code; a run left paused (quit, or a signal) keeps its lock for `resume`.

use std::io::{BufRead, IsTerminal, Write};

use deckhand::engine::{Control, EventKind, Outcome, RunHandle};
use deckhand::event::RunKind;
use deckhand::exit;
use deckhand::headless::{Format, Printer};
use deckhand::leave::{self, Going, Input, Leave};
use deckhand::ui::UiOptions;

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

/// Follow a run to its end with the line printer. Signals follow the leave policy (see
/// `deckhand::leave`): SIGINT, SIGTERM or SIGHUP pause the run at the next step boundary and
/// leave with the lock held, saying how to resume; a second signal aborts; a step that outlasts
/// the grace is aborted.
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
    let mut sigs: Vec<(&'static str, Option<tokio::signal::unix::Signal>)> = vec![
        ("SIGINT", signal(SignalKind::interrupt()).ok()),
        ("SIGTERM", signal(SignalKind::terminate()).ok()),
        ("SIGHUP", signal(SignalKind::hangup()).ok()),
    ];
    let mut leave = Leave::new();
    let mut rolling_back = false;
    // Carry out one answer of the policy; Some when it says to go.
    let answer = |r: leave::Response| -> Option<Going> {
        if let Some(c) = r.send {
            let _ = controls.send(c);
        }
        if let Some(n) = r.say {
            eprintln!("{}", n.line());
        }
        r.go
    };
    let going = loop {
        let any_signal = async {
            let futs = sigs.iter_mut().map(|(name, s)| {
                Box::pin(async move {
                    match s.as_mut() {
                        Some(s) => {
                            s.recv().await;
                            *name
                        }
                        None => std::future::pending::<&'static str>().await,
                    }
                })
            });
            futures::future::select_all(futs).await.0
        };
        let deadline = leave.deadline();
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending::<()>().await,
            }
        };
        let input = tokio::select! {
            ev = h.events.recv() => match ev {
                Some(e) => {
                    printer.print(&e);
                    match &e.kind {
                        EventKind::Finished { outcome, message, .. } => {
                            finished_msg = Some((*outcome, message.clone()));
                            Some(Input::Ended)
                        }
                        EventKind::Paused => Some(Input::Paused),
                        EventKind::RollbackStarted { .. } => {
                            rolling_back = true;
                            None
                        }
                        EventKind::Gate { .. } if interactive && !leave.leaving() => {
                            ask_at_gate(controls.clone());
                            None
                        }
                        _ => None,
                    }
                }
                None => break Going::Ended,
            },
            name = any_signal => Some(Input::Signal { name, rolling_back }),
            _ = grace => Some(Input::GraceElapsed),
        };
        if let Some(input) = input {
            if let Some(go) = answer(leave.step(input, std::time::Instant::now())) {
                if go == Going::Paused {
                    break go;
                }
            }
        }
    };
    if going == Going::Paused {
        say_left_paused(resume_hint);
        return exit::FAILED;
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
