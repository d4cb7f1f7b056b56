//! Why a step did not do its work, kept as what the transport, the script or the balancer said,
//! and turned into a sentence only where it is shown.
//!
//! A [`StepError`] knows whether the step failed, timed out or was killed
//! ([`StepError::result`]), so the step bracket never has to guess it from a message. A node's
//! failure ([`NodeFailure`]) adds which node and which step.

use std::time::Duration;

use crate::event::StepResult;
use crate::lb::LbError;
use crate::transport::{Ended, ExecOutcome, TransportError};
use crate::util::format_duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// The transport could not run the step (connection refused or lost).
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The script ran and did not succeed: a non-zero status, a signal, its time limit or a
    /// cancel. `limit` is the time limit it ran under, for the message.
    #[error("{}", .outcome.describe_failure(*.limit))]
    Script {
        outcome: Box<ExecOutcome>,
        limit: Option<Duration>,
    },
    /// An upload ran past its time limit.
    #[error("upload timed out after {}", format_duration(*.0))]
    UploadTimedOut(Duration),
    /// Abort or rollback stopped the step.
    #[error("{0} cancelled")]
    Cancelled(&'static str),
    /// Every attempt of the health check failed; `last` is the last attempt's reason.
    #[error("unhealthy after {attempts} attempts: {last}")]
    Unhealthy { attempts: u32, last: String },
    /// The balancer refused, or answered something unexpected.
    #[error("{0}")]
    Balancer(#[from] LbError),
    /// The balancer could not be reached and nobody can wait for it (headless, or the
    /// operator stopped waiting); `out_of_rotation` names the nodes it may hold out.
    #[error("{error}; {out_of_rotation}")]
    BalancerLost {
        error: LbError,
        out_of_rotation: String,
    },
    /// The node is not in the state the step needs, measured (e.g. `current` after a switch).
    #[error("{0}")]
    Node(String),
}

impl StepError {
    /// The failed script's error; a successful outcome is not one.
    pub fn script(outcome: ExecOutcome, limit: Option<Duration>) -> Self {
        StepError::Script {
            outcome: Box::new(outcome),
            limit,
        }
    }

    /// How the step ended, for its `StepFinished` event.
    pub fn result(&self) -> StepResult {
        match self {
            StepError::Script { outcome, .. } => match outcome.ended {
                Ended::TimedOut => StepResult::TimedOut,
                Ended::Cancelled => StepResult::Killed,
                _ => StepResult::Failed,
            },
            StepError::UploadTimedOut(_) => StepResult::TimedOut,
            StepError::Cancelled(_) => StepResult::Killed,
            _ => StepResult::Failed,
        }
    }
}

/// A node's turn failed: which step (None: while putting back a node already on the release),
/// and why.
#[derive(Debug, thiserror::Error)]
#[error("{node}: {}{error}", .step.as_ref().map(|s| format!("{s} failed: ")).unwrap_or_default())]
pub(crate) struct NodeFailure {
    pub node: String,
    pub step: Option<String>,
    pub error: StepError,
}

/// Why a run could not start; nothing was contacted yet.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("environment `{0}` is not defined")]
    UnknownEnvironment(String),
    #[error("cannot create the journal in {dir}: {source}")]
    Journal { dir: String, source: std::io::Error },
    /// A node's transport could not be set up (`node NAME: why`).
    #[error("{0}")]
    Node(String),
    /// A balancer could not be set up.
    #[error("{0}")]
    Balancer(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(e: Ended, tail: &[&str]) -> ExecOutcome {
        ExecOutcome {
            ended: e,
            stdout: String::new(),
            stderr_tail: tail.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_step_error_knows_how_the_step_ended() {
        let limit = Some(Duration::from_secs(5));
        let timed_out = StepError::script(ended(Ended::TimedOut, &[]), limit);
        assert_eq!(timed_out.result(), StepResult::TimedOut);
        assert_eq!(timed_out.to_string(), "timed out after 5.0s and was killed");
        let killed = StepError::script(ended(Ended::Cancelled, &[]), limit);
        assert_eq!(killed.result(), StepResult::Killed);
        let failed = StepError::script(ended(Ended::Exited(Some(3)), &["boom"]), limit);
        assert_eq!(failed.result(), StepResult::Failed);
        assert_eq!(failed.to_string(), "exited with status 3: boom");
        assert_eq!(
            StepError::Cancelled("health check").result(),
            StepResult::Killed
        );
        assert_eq!(
            StepError::UploadTimedOut(Duration::from_secs(60)).result(),
            StepResult::TimedOut
        );
        let lost = StepError::BalancerLost {
            error: LbError::Unreachable("connection refused".into()),
            out_of_rotation: "out of rotation as far as deckhand knows: web-1".into(),
        };
        assert_eq!(lost.result(), StepResult::Failed);
        assert_eq!(
            lost.to_string(),
            "connection refused; out of rotation as far as deckhand knows: web-1"
        );
    }

    #[test]
    fn a_node_failure_reads_as_node_step_and_reason() {
        let f = NodeFailure {
            node: "web-2".into(),
            step: Some("health".into()),
            error: StepError::Unhealthy {
                attempts: 3,
                last: "exited with status 1".into(),
            },
        };
        assert_eq!(
            f.to_string(),
            "web-2: health failed: unhealthy after 3 attempts: exited with status 1"
        );
    }
}
