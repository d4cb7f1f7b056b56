//! Promote eligibility: which release an environment may hand on, and whether a release passed an
//! environment's checklist. One rule for `deckhand promote FROM TO` and for the preflight of an
//! environment that `requires` another. Pure: it reads node statuses the caller has read.

use super::status::NodeStatus;

/// Why nothing can be promoted from an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPromotable {
    /// The environment does not run one release everywhere (or a node could not be read).
    #[error("{from} does not run one release on every node ({}); nothing to promote", .lives.iter().map(|(n, r)| format!("{n}: {}", r.as_deref().unwrap_or("none"))).collect::<Vec<_>>().join(", "))]
    Mixed {
        from: String,
        lives: Vec<(String, Option<String>)>,
    },
    /// The release is live everywhere but its checklist did not pass on these nodes.
    #[error("{release} is live on {from} but has not passed its checklist on {}; nothing to promote\n  = help: let the checklist finish on {from} (deckhand deploy {from} --release {release})", .nodes.join(", "))]
    Unverified {
        from: String,
        release: String,
        nodes: Vec<String>,
    },
}

/// The nodes on which `release` has not passed the checklist (an unreachable node says why).
pub(crate) fn unverified_on(release: &str, statuses: &[NodeStatus]) -> Vec<String> {
    statuses
        .iter()
        .filter_map(|s| {
            if !s.reachable {
                Some(format!(
                    "{} (unreachable: {})",
                    s.node,
                    s.error.clone().unwrap_or_default()
                ))
            } else if !s.verified.iter().any(|v| v == release) {
                Some(s.node.clone())
            } else {
                None
            }
        })
        .collect()
}

/// The release `from` can hand on: live on every node and verified on every node.
pub fn promotable(from: &str, statuses: &[NodeStatus]) -> Result<String, NotPromotable> {
    let lives: Vec<(String, Option<String>)> = statuses
        .iter()
        .map(|s| (s.node.clone(), s.live_release.clone()))
        .collect();
    let release = match lives.first().and_then(|(_, r)| r.clone()) {
        Some(r) if lives.iter().all(|(_, l)| l.as_deref() == Some(r.as_str())) => r,
        _ => {
            return Err(NotPromotable::Mixed {
                from: from.to_string(),
                lives,
            })
        }
    };
    let nodes = unverified_on(&release, statuses);
    if nodes.is_empty() {
        Ok(release)
    } else {
        Err(NotPromotable::Unverified {
            from: from.to_string(),
            release,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, live: Option<&str>, verified: &[&str]) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            host: "h".into(),
            reachable: true,
            error: None,
            live_release: live.map(String::from),
            previous_release: None,
            releases: vec![],
            lock: None,
            locked: false,
            lock_age_s: None,
            free_kb: None,
            verified: verified.iter().map(|v| v.to_string()).collect(),
            progress: None,
            history: vec![],
        }
    }

    #[test]
    fn a_release_live_and_verified_everywhere_is_promotable() {
        let s = [
            status("stg-1", Some("v2"), &["v1", "v2"]),
            status("stg-2", Some("v2"), &["v2"]),
        ];
        assert_eq!(promotable("staging", &s).as_deref(), Ok("v2"));
    }

    #[test]
    fn mixed_releases_or_a_node_without_one_promote_nothing() {
        let s = [
            status("stg-1", Some("v2"), &["v2"]),
            status("stg-2", Some("v1"), &["v1"]),
            status("stg-3", None, &[]),
        ];
        let e = promotable("staging", &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "staging does not run one release on every node (stg-1: v2, stg-2: v1, stg-3: none); nothing to promote"
        );
    }

    #[test]
    fn an_unverified_node_is_named_and_an_unreachable_one_says_why() {
        let mut down = status("stg-2", Some("v2"), &["v2"]);
        down.reachable = false;
        down.error = Some("connection refused".into());
        let s = [status("stg-1", Some("v2"), &["v1"]), down];
        assert_eq!(
            unverified_on("v2", &s),
            vec!["stg-1", "stg-2 (unreachable: connection refused)"]
        );
        let e = promotable("staging", &s[..1]).unwrap_err();
        assert!(matches!(e, NotPromotable::Unverified { ref nodes, .. } if nodes == &["stg-1"]));
    }
}
