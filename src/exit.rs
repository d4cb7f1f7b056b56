//! deckhand's exit codes: one table for every command, and the one conversion of a run's
//! [`Outcome`] into a code. Scripts and CI depend on these numbers; the README lists them.

use crate::event::{Outcome, RunKind};

/// Deployed (or rolled back on request); the command did what was asked.
pub const OK: i32 = 0;
/// The run failed: it rolled back, halted, was aborted, or left failed nodes (the message says
/// which); or the operator declined at a prompt.
pub const FAILED: i32 = 1;
/// Bad input: the inventory, a flag, a release name, a journal file.
pub const BAD_INPUT: i32 = 2;
/// Another deployment holds the lock; nothing changed.
pub const LOCK_HELD: i32 = 3;
/// Nothing was changed because something outside deckhand is not ready: a node unreachable, a
/// host key refused, a release not verified where it must be.
pub const NOT_READY: i32 = 4;

/// The exit code of a run: its outcome's, except that a rollback asked for and done is a
/// success.
pub fn of_run(kind: RunKind, outcome: Outcome) -> i32 {
    match (kind, outcome) {
        (RunKind::Rollback, Outcome::RolledBack) => OK,
        (_, Outcome::Deployed) => OK,
        (_, Outcome::LockHeld) => LOCK_HELD,
        (_, Outcome::PreflightFailed) => NOT_READY,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_code() {
        use Outcome::*;
        let deploy = |o| of_run(RunKind::Deploy, o);
        assert_eq!(deploy(Deployed), 0);
        for o in [RolledBack, Halted, Aborted, Partial, Failed] {
            assert_eq!(deploy(o), 1, "{o:?}");
        }
        assert_eq!(deploy(LockHeld), 3);
        assert_eq!(deploy(PreflightFailed), 4);
        assert_eq!(of_run(RunKind::Rollback, RolledBack), 0);
        assert_eq!(of_run(RunKind::Rollback, Failed), 1);
        assert_eq!(of_run(RunKind::Rollback, LockHeld), 3);
    }
}
