//! Load balancers: take a node out of rotation before it changes and put it back when healthy,
//! and report the balancer's own view of each node. This module holds the driver trait and the
//! command driver (user-given shell commands run on this machine, for nginx, cloud LBs, …).
//!
//! A driver only talks to the balancer; when to drain or enable is the engine's decision.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::inventory::CommandBalancer;
use crate::transport::local::LocalTransport;
use crate::transport::{ExecRequest, LineSender, Transport};
use crate::util::expand;

#[async_trait]
pub trait LoadBalancer: Send + Sync {
    async fn drain(
        &self,
        vars: &BTreeMap<&str, String>,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<(), String>;
    async fn enable(
        &self,
        vars: &BTreeMap<&str, String>,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<(), String>;
    /// The balancer's answer: Some(true) in rotation, Some(false) out, None when it cannot say.
    async fn in_rotation(
        &self,
        vars: &BTreeMap<&str, String>,
        cancel: &CancellationToken,
    ) -> Result<Option<bool>, String>;
}

pub struct CommandDriver {
    cfg: CommandBalancer,
    local: LocalTransport,
}

impl CommandDriver {
    pub fn new(cfg: CommandBalancer, cwd: std::path::PathBuf) -> Self {
        CommandDriver {
            cfg,
            local: LocalTransport::new(cwd),
        }
    }

    async fn run(
        &self,
        what: &str,
        template: &str,
        vars: &BTreeMap<&str, String>,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let script = expand(template, vars, true);
        let out = self
            .local
            .exec(
                &ExecRequest::new(script).timeout(self.cfg.timeout),
                lines,
                cancel,
            )
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "balancer {what} command {}",
                out.describe_failure(Some(self.cfg.timeout))
            ))
        }
    }
}

/// Read a balancer's word for a node's state.
pub fn parse_rotation(word: &str) -> Option<bool> {
    match word.trim().to_ascii_lowercase().as_str() {
        "ready" | "up" | "enabled" | "enable" | "in" | "active" | "healthy" => Some(true),
        "drain" | "drained" | "maint" | "down" | "disabled" | "disable" | "out" | "inactive" => {
            Some(false)
        }
        _ => None,
    }
}

#[async_trait]
impl LoadBalancer for CommandDriver {
    async fn drain(
        &self,
        vars: &BTreeMap<&str, String>,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        self.run("drain", &self.cfg.drain, vars, lines, cancel)
            .await
            .map(|_| ())
    }
    async fn enable(
        &self,
        vars: &BTreeMap<&str, String>,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        self.run("enable", &self.cfg.enable, vars, lines, cancel)
            .await
            .map(|_| ())
    }
    async fn in_rotation(
        &self,
        vars: &BTreeMap<&str, String>,
        cancel: &CancellationToken,
    ) -> Result<Option<bool>, String> {
        match &self.cfg.state {
            None => Ok(None),
            Some(t) => {
                let out = self.run("state", t, vars, None, cancel).await?;
                Ok(parse_rotation(out.lines().last().unwrap_or("")))
            }
        }
    }
}

/// Default time a balancer command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::parse_rotation;

    #[test]
    fn balancer_words() {
        assert_eq!(parse_rotation("READY\n"), Some(true));
        assert_eq!(parse_rotation("drain"), Some(false));
        assert_eq!(parse_rotation("weird"), None);
    }
}
