//! The work alone: the deploy's commands run on this machine, one `sh -c` each, as the fleet's
//! login user, in the order and with the concurrency of the deploy (the once-steps alone, then
//! batch by batch, the nodes of a batch side by side, each node's commands one after the
//! other). No SSH, no balancer: what any tool would cost if it cost nothing.

use std::time::{Duration, Instant};

use crate::rig::{Commands, Rig};

pub struct WorkRun {
    pub wall: Duration,
    /// Each command's own time: (node, step, time).
    pub steps: Vec<(String, String, Duration)>,
}

impl WorkRun {
    /// Two runs of the same work as one: each wall time and each command's time averaged.
    pub fn mean(a: &WorkRun, b: &WorkRun) -> WorkRun {
        let steps = a
            .steps
            .iter()
            .zip(&b.steps)
            .map(|((n, s, x), (_, _, y))| (n.clone(), s.clone(), (*x + *y) / 2))
            .collect();
        WorkRun {
            wall: (a.wall + b.wall) / 2,
            steps,
        }
    }

    /// The time of `step` on `node` (the first such command).
    pub fn of(&self, node: &str, step: &str) -> Option<Duration> {
        self.steps
            .iter()
            .find(|(n, s, _)| n == node && s == step)
            .map(|(_, _, d)| *d)
    }
}

fn run_one(rig: &Rig, node: &str, step: &str, cmd: &str) -> Duration {
    let started = Instant::now();
    let out = rig
        .local_sh(rig.node_index(node), cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run /bin/sh: {e}"));
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "the work alone: step {step} for {node} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

pub fn run(rig: &Rig, cmds: &Commands, batch: usize) -> WorkRun {
    let started = Instant::now();
    let mut steps = Vec::new();
    for (name, c) in &cmds.before {
        steps.push((
            cmds.first.clone(),
            name.clone(),
            run_one(rig, &cmds.first, name, c),
        ));
    }
    for group in cmds.nodes.chunks(batch.max(1)) {
        let done: Vec<Vec<(String, String, Duration)>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|(node, list)| {
                    s.spawn(move || {
                        list.iter()
                            .map(|(name, c)| {
                                (node.clone(), name.clone(), run_one(rig, node, name, c))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a node's work"))
                .collect()
        });
        steps.extend(done.into_iter().flatten());
    }
    for (name, c) in &cmds.after {
        steps.push((
            cmds.first.clone(),
            name.clone(),
            run_one(rig, &cmds.first, name, c),
        ));
    }
    WorkRun {
        wall: started.elapsed(),
        steps,
    }
}
