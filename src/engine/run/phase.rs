//! One inventory phase as a step: a command, a `deploy.sh` function, an upload, or a builtin
//! (`release` builds the new release directory, `switch` moves `current` and reads it back,
//! `cleanup` removes old releases). Stage steps (before and after the batches) run a phase on
//! all their targets at once.

use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::Run;
use crate::engine::error::StepError;
use crate::engine::remote;
use crate::engine::script;
use crate::event::EventKind;
use crate::inventory::{Action, Builtin};
use crate::plan::Target;
use crate::transport::ExecRequest;
use crate::util::expand;

/// Default limits for steps that do not set their own.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub(super) const BUILTIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Run {
    fn phase_timeout(&self, index: usize) -> Duration {
        let p = &self.inv.phases[index];
        p.timeout.unwrap_or(match p.action {
            Action::Builtin(_) => BUILTIN_TIMEOUT,
            _ => PHASE_TIMEOUT,
        })
    }

    /// Run inventory phase `index` on `target` for `node` (None: a stage step on this machine).
    pub(super) async fn run_phase(
        &self,
        index: usize,
        node: Option<&str>,
        target: &Target,
        release: &str,
        previous: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        let phase = &self.inv.phases[index];
        let vars = self.vars(node, release, previous);
        let timeout = self.phase_timeout(index);
        let shown_node = match target {
            Target::Local => node,
            Target::Node(n) => Some(n.as_str()),
        };
        let on_node = match target {
            Target::Node(n) => Some(n.clone()),
            Target::Local => None,
        };
        let needs_node = |what: &str| {
            on_node
                .clone()
                .ok_or_else(|| StepError::Node(format!("the {what} builtin needs a node")))
        };
        let steps = &self.steps;
        match &phase.action {
            Action::Run(cmd) => {
                let body = expand(cmd, &vars, true);
                let script = script::with_prologue(&vars, target, &body);
                steps
                    .exec(
                        shown_node,
                        &phase.name,
                        Some(body),
                        target,
                        ExecRequest::new(script).timeout(timeout),
                        cancel,
                    )
                    .await
                    .map(|_| ())
            }
            Action::Function(f) => {
                let path = script::deploy_script_path(&self.inv, target);
                let script = script::with_prologue(&vars, target, &script::function_call(&path, f));
                steps
                    .exec(
                        shown_node,
                        &phase.name,
                        Some(format!("deploy.sh: {f}")),
                        target,
                        ExecRequest::new(script).timeout(timeout),
                        cancel,
                    )
                    .await
                    .map(|_| ())
            }
            Action::Upload { from, to } => {
                let from_path = self.inv.base_dir().join(expand(from, &vars, false));
                let to_path = expand(to, &vars, false);
                let shown = format!("upload {} → {}", from_path.display(), to_path);
                steps
                    .step(shown_node, &phase.name, Some(shown), async {
                        let t = steps.nodes.transport(target);
                        tokio::select! {
                            r = t.upload(&from_path, &to_path) => r.map_err(StepError::from),
                            _ = tokio::time::sleep(timeout) => Err(StepError::UploadTimedOut(timeout)),
                            _ = cancel.cancelled() => Err(StepError::Cancelled("upload")),
                        }
                    })
                    .await
            }
            Action::Builtin(Builtin::Release) => {
                let n = needs_node("release")?;
                let dp = steps.nodes.deploy_path(&n);
                let script = remote::release_script(
                    &dp,
                    release,
                    &self.inv.app.shared_files,
                    &self.inv.app.shared_dirs,
                );
                self.ledger.set_created(&n, true);
                steps
                    .exec(
                        Some(&n),
                        &phase.name,
                        Some(format!("make releases/{release}, link shared")),
                        target,
                        ExecRequest::new(script).timeout(timeout),
                        cancel,
                    )
                    .await
                    .map(|_| ())
            }
            Action::Builtin(Builtin::Switch) => {
                let n = needs_node("switch")?;
                self.switch_node(&n, release, &phase.name, cancel).await
            }
            Action::Builtin(Builtin::Cleanup) => {
                let n = needs_node("cleanup")?;
                let dp = steps.nodes.deploy_path(&n);
                let snap = steps
                    .read_node(&n, cancel)
                    .await
                    .map_err(|e| StepError::Node(e.to_string()))?;
                let live = snap.current.clone();
                let prev = self.ledger.live_before(&n).or(snap.previous());
                let victims = remote::cleanup_victims(
                    &snap.releases,
                    self.inv.app.keep_releases as usize,
                    &[live.as_deref(), prev.as_deref(), Some(release)],
                );
                let shown = format!(
                    "keep {} releases; remove {}",
                    self.inv.app.keep_releases,
                    if victims.is_empty() {
                        "none".to_string()
                    } else {
                        victims.join(", ")
                    }
                );
                steps
                    .exec(
                        Some(&n),
                        &phase.name,
                        Some(shown),
                        target,
                        ExecRequest::new(remote::cleanup_script(&dp, &victims)).timeout(timeout),
                        cancel,
                    )
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Switch `current` to `release` and read it back; the ledger and the screen learn where it
    /// points now, whatever it points at.
    pub(super) async fn switch_node(
        &self,
        node: &str,
        release: &str,
        phase: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        let dp = self.steps.nodes.deploy_path(node);
        let tag = format!("{}-{}", self.id, node);
        let target = Target::Node(node.to_string());
        let out = self
            .steps
            .exec(
                Some(node),
                phase,
                Some(format!("current → releases/{release}")),
                &target,
                ExecRequest::new(remote::switch_script(&dp, release, &tag))
                    .timeout(BUILTIN_TIMEOUT),
                cancel,
            )
            .await?;
        let now = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("current="))
            .and_then(remote::release_of_link);
        self.ledger.switched(node, now.clone());
        self.em.emit(EventKind::NodeRelease {
            node: node.to_string(),
            release: now.clone(),
        });
        if now.as_deref() != Some(release) {
            return Err(StepError::Node(format!(
                "after the switch, current points at {now:?}, not {release}"
            )));
        }
        Ok(())
    }

    /// Run a before/after stage step on all its targets (nodes concurrently). Err: the phase and
    /// every target's reason.
    pub(super) async fn stage_step(&self, index: usize, targets: &[Target]) -> Result<(), String> {
        let release = self.plan.release.clone();
        let cancel = self.ctl.forward.clone();
        let runs = targets.iter().map(|t| {
            let release = release.clone();
            let cancel = cancel.clone();
            async move {
                let node = match t {
                    Target::Node(n) => Some(n.as_str()),
                    Target::Local => None,
                };
                let previous = node.and_then(|n| self.ledger.live_before(n));
                self.run_phase(index, node, t, &release, previous.as_deref(), &cancel)
                    .await
            }
        });
        let errors: Vec<String> = join_all(runs)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}",
                self.inv.phases[index].name,
                errors.join("; ")
            ))
        }
    }
}
