//! Batches (the rolling and canary strategies): the nodes of a batch take their turn at once; a
//! failure goes to the failure policy; a failure gate or a plan gate (pause_after_first, a
//! canary pause) waits for the operator between batches.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use super::turn::NodeStop;
use super::{Ended, Run};
use crate::event::EventKind;

impl Run {
    /// Every batch in turn. Ok: how many failed nodes were tolerated (within `max_fail`).
    pub(super) async fn batches(self: Arc<Self>) -> Result<usize, Ended> {
        let batches = self.plan.batches.clone();
        let mut tolerated = 0usize;
        for (i, batch) in batches.iter().enumerate() {
            self.boundary().await?;
            self.em.emit(EventKind::BatchStarted {
                index: i,
                nodes: batch.clone(),
            });
            let results = join_all(batch.iter().map(|n| {
                let me = self.clone();
                let n = n.clone();
                async move {
                    let r = me.node_forward(&n).await;
                    let tolerated = match &r {
                        Err(NodeStop::Failed(f)) => me.on_node_failed(&n, f).await,
                        _ => false,
                    };
                    (n, r, tolerated)
                }
            }))
            .await;
            tolerated += results.iter().filter(|(_, _, t)| *t).count();
            self.stopped().await?;
            let gate = self.failure_gate.lock().ok().and_then(|mut g| g.take());
            if let Some(reason) = gate {
                if let Err(stop) = self.ctl.gate(reason, false).await {
                    return Err(self.stop(stop).await);
                }
                // Promoted: go on without the failed nodes, each put back on a whole release.
                for (n, r, _) in &results {
                    if matches!(r, Err(NodeStop::Failed(_))) {
                        self.recover_node(n).await;
                        tolerated += 1;
                    }
                }
            }
            if self.plan.gates.contains(&i) && i + 1 < batches.len() {
                let reason = format!(
                    "batch {} of {} done ({}); promote to continue with {}",
                    i + 1,
                    batches.len(),
                    batch.join(", "),
                    batches[i + 1].join(", ")
                );
                let wait = self
                    .plan
                    .gate_waits
                    .iter()
                    .find(|(g, _)| *g == i)
                    .map(|(_, ms)| Duration::from_millis(*ms));
                if let Err(stop) = self
                    .ctl
                    .gate_for(reason, self.opts.auto_promote, wait)
                    .await
                {
                    return Err(self.stop(stop).await);
                }
            }
        }
        Ok(tolerated)
    }
}
