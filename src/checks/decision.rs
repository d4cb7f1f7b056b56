//! The seed's rollback decision tree, as a pure function over the latest check results:
//!
//! ```text
//! health OK? ──no──▶ roll back
//!    │yes
//! error rate normal? ──no──▶ roll back
//!    │yes
//! performance OK? ──yes──▶ keep
//!    │no
//! every critical check OK? ──yes──▶ keep (and alert)   ──no──▶ roll back
//! ```
//! A check that could not run ("unknown") is never counted as a pass, but it does not trigger a
//! rollback by itself either: the tree acts on failures it has measured.

use crate::event::CheckStatus;
use crate::inventory::CheckKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Keep the release, but tell the team.
    KeepAndAlert(String),
    RollBack(String),
}

/// One check's latest result (per-node results already folded: any failing node fails it).
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub name: &'a str,
    pub kind: CheckKind,
    pub status: CheckStatus,
}

pub fn decide(obs: &[Observation<'_>]) -> Verdict {
    let failing = |kind: CheckKind| -> Vec<&str> {
        obs.iter()
            .filter(|o| o.kind == kind && o.status == CheckStatus::Fail)
            .map(|o| o.name)
            .collect()
    };
    let health = failing(CheckKind::Health);
    if !health.is_empty() {
        return Verdict::RollBack(format!("health check failing: {}", health.join(", ")));
    }
    let errors = failing(CheckKind::Errors);
    if !errors.is_empty() {
        return Verdict::RollBack(format!("error rate abnormal: {}", errors.join(", ")));
    }
    let perf = failing(CheckKind::Performance);
    if perf.is_empty() {
        return Verdict::Keep;
    }
    let critical_not_ok: Vec<&str> = obs
        .iter()
        .filter(|o| o.kind == CheckKind::Critical && o.status != CheckStatus::Pass)
        .map(|o| o.name)
        .collect();
    if critical_not_ok.is_empty() {
        Verdict::KeepAndAlert(format!(
            "performance not OK ({}), but every critical check passes: keeping the release",
            perf.join(", ")
        ))
    } else {
        Verdict::RollBack(format!(
            "performance not OK ({}) and critical checks not passing ({})",
            perf.join(", "),
            critical_not_ok.join(", ")
        ))
    }
}

/// Fold per-node results into one status: any failure fails, then any unknown, then running.
pub(crate) fn fold(statuses: &[CheckStatus]) -> CheckStatus {
    use CheckStatus::*;
    for s in [Fail, Unknown, NeedsConfirmation, Running, Pending] {
        if statuses.contains(&s) {
            return s;
        }
    }
    if statuses.is_empty() {
        Pending
    } else {
        Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckKind::*;
    use CheckStatus::*;

    fn o(name: &'static str, kind: CheckKind, status: CheckStatus) -> Observation<'static> {
        Observation { name, kind, status }
    }

    #[test]
    fn every_branch_of_the_tree() {
        let all_ok = [
            o("up", Health, Pass),
            o("err", Errors, Pass),
            o("rt", Performance, Pass),
            o("crit", Critical, Pass),
        ];
        assert_eq!(decide(&all_ok), Verdict::Keep);
        let mut v = all_ok.to_vec();
        v[0].status = Fail;
        assert!(
            matches!(decide(&v), Verdict::RollBack(r) if r.contains("health") && r.contains("up"))
        );
        let mut v = all_ok.to_vec();
        v[1].status = Fail;
        assert!(matches!(decide(&v), Verdict::RollBack(r) if r.contains("error rate")));
        let mut v = all_ok.to_vec();
        v[2].status = Fail;
        assert!(matches!(decide(&v), Verdict::KeepAndAlert(r) if r.contains("rt")));
        v[3].status = Fail;
        assert!(matches!(decide(&v), Verdict::RollBack(r) if r.contains("crit")));
        v[3].status = NeedsConfirmation;
        assert!(
            matches!(decide(&v), Verdict::RollBack(_)),
            "an unconfirmed critical item is not a pass"
        );
        // a critical failure alone, with performance fine, keeps the release (the tree's shape)
        let mut v = all_ok.to_vec();
        v[3].status = Fail;
        assert_eq!(decide(&v), Verdict::Keep);
        // unknown is never a pass, but not a measured failure either
        let mut v = all_ok.to_vec();
        v[0].status = Unknown;
        assert_eq!(decide(&v), Verdict::Keep);
    }

    #[test]
    fn folding_nodes() {
        assert_eq!(fold(&[Pass, Fail, Pass]), Fail);
        assert_eq!(fold(&[Pass, Unknown]), Unknown);
        assert_eq!(fold(&[Pass, Pass]), Pass);
    }
}
