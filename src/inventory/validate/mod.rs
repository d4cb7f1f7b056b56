//! Checks over a whole loaded inventory: how its parts refer to each other. Names that must point
//! at something real (an environment's nodes and roles, blue-green groups, a phase's roles, a
//! check's `on`, `requires`, a balancer's `via`), names that must be unique (phases, checks,
//! servers behind one balancer), builtin ordering, and the rules that need several sections at
//! once (a `once` phase in every environment, backups before migrations in protected ones).
//!
//! Shape errors (types, unknown keys, words) are `read`'s job; this module sees a fully typed
//! [`Inventory`] with the spans of what was written, and only reports, never changes it.

mod balancers;
mod checks;
mod environments;
mod phases;

use super::model::*;
use crate::diag::Diagnostic;

/// Every cross-reference problem of `inv`; `source` is the text it was read from, for line
/// numbers in messages.
pub(crate) fn validate(inv: &Inventory, source: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let cx = Facts {
        inv,
        source,
        roles: inv
            .nodes
            .iter()
            .flat_map(|n| n.roles.iter().map(|r| r.as_str()))
            .collect(),
    };
    environments::check(&cx, &mut out);
    phases::check(&cx, &mut out);
    checks::check(&cx, &mut out);
    balancers::check(&cx, &mut out);
    out
}

/// What every check needs: the inventory, its text, and the roles its nodes have.
struct Facts<'a> {
    inv: &'a Inventory,
    source: &'a str,
    roles: Vec<&'a str>,
}

impl Facts<'_> {
    fn has_role(&self, role: &str) -> bool {
        self.roles.contains(&role)
    }

    /// The line of a byte offset, 1-based.
    fn line(&self, at: usize) -> usize {
        crate::diag::line_col(self.source, at).0
    }

    /// "FILE:LINE" of a byte offset, for a message that names a second place.
    fn place(&self, at: usize) -> String {
        format!("{}:{}", self.inv.file.display(), self.line(at))
    }
}
