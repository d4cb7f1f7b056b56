//! The health check of a node, as one step: a command on the node or an HTTP GET from this
//! machine, tried `retries + 1` times `interval` apart, each attempt under the check's own time
//! limit. Every failed attempt is shown as a line of the step's output; a cancel (abort,
//! rollback) ends the step as killed.

use tokio_util::sync::CancellationToken;

use super::error::StepError;
use super::script::{self, Vars};
use super::steps::StepRunner;
use crate::event::{CheckStatus, EventKind, Stream};
use crate::inventory::{Health, HealthProbe};
use crate::plan::Target;
use crate::transport::ExecRequest;
use crate::util::expand;

/// What the step shows as its command.
fn shown(h: &Health, vars: &Vars) -> String {
    match &h.probe {
        HealthProbe::Run(c) => expand(c, vars, true),
        HealthProbe::Url { url, expect } => {
            format!("GET {} expecting {expect}", expand(url, vars, false))
        }
    }
}

/// One attempt: Ok when healthy, else why not.
async fn attempt(
    steps: &StepRunner,
    h: &Health,
    node: &str,
    vars: &Vars,
    cancel: &CancellationToken,
) -> Result<(), String> {
    match &h.probe {
        HealthProbe::Run(c) => {
            let target = Target::Node(node.to_string());
            let script = script::with_prologue(vars, &target, &expand(c, vars, true));
            steps
                .exec_quiet(
                    Some(node),
                    "health",
                    &target,
                    &ExecRequest::new(script).timeout(h.timeout),
                    cancel,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        HealthProbe::Url { url, expect } => {
            // The checklist's HTTP probe, with only the status to meet.
            let r = crate::checks::http(&expand(url, vars, false), *expect, None, None, h.timeout)
                .await;
            match r.status {
                CheckStatus::Pass => Ok(()),
                _ => Err(r.detail.unwrap_or_else(|| "failed".into())),
            }
        }
    }
}

/// Check `node` with `health` (None: the environment has no health check, shown as skipped).
pub(crate) async fn check(
    steps: &StepRunner,
    health: Option<&Health>,
    node: &str,
    vars: &Vars,
    cancel: &CancellationToken,
) -> Result<(), StepError> {
    let Some(h) = health else {
        steps.skipped(
            node,
            "health",
            "no health check configured for this environment".into(),
        );
        return Ok(());
    };
    let attempts = h.retries + 1;
    steps
        .step(Some(node), "health", Some(shown(h, vars)), async {
            let mut last = String::new();
            for n in 1..=attempts {
                match attempt(steps, h, node, vars, cancel).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        last = e;
                        steps.em.emit(EventKind::Output {
                            node: Some(node.to_string()),
                            phase: "health".into(),
                            stream: Stream::Stderr,
                            line: format!("attempt {n}/{attempts}: {last}"),
                        });
                    }
                }
                if n < attempts {
                    tokio::select! {
                        _ = tokio::time::sleep(h.interval) => {}
                        _ = cancel.cancelled() => return Err(StepError::Cancelled("health check")),
                    }
                }
                if cancel.is_cancelled() {
                    return Err(StepError::Cancelled("health check"));
                }
            }
            Err(StepError::Unhealthy { attempts, last })
        })
        .await
}
