//! The command driver: user-given shell commands on this machine drain, enable and report a
//! node (`{node}`, `{host}` and the other placeholders are filled in and quoted). For balancers
//! deckhand has no driver for: nginx upstream files, cloud load balancer CLIs, ….

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{parse_word, Admin, LbError, LoadBalancer, ServerState};
use crate::inventory::CommandBalancer;
use crate::transport::local::LocalTransport;
use crate::transport::{ExecRequest, Transport};
use crate::util::expand;

pub struct CommandDriver {
    cfg: CommandBalancer,
    local: LocalTransport,
    timeout: Duration,
}

impl CommandDriver {
    pub fn new(cfg: CommandBalancer, cwd: PathBuf, timeout: Duration) -> Self {
        CommandDriver {
            cfg,
            local: LocalTransport::new(cwd),
            timeout,
        }
    }

    async fn run(
        &self,
        what: &str,
        template: &str,
        vars: &BTreeMap<&str, String>,
        cancel: &CancellationToken,
    ) -> Result<String, LbError> {
        let script = expand(template, vars, true);
        let out = self
            .local
            .exec(
                &ExecRequest::new(script).timeout(self.timeout),
                None,
                cancel,
            )
            .await
            .map_err(|e| LbError::Unreachable(e.to_string()))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LbError::Refused(format!(
                "the balancer's {what} command {}",
                out.describe_failure(Some(self.timeout))
            )))
        }
    }
}

#[async_trait]
impl LoadBalancer for CommandDriver {
    fn describe(&self) -> String {
        "command balancer".into()
    }

    async fn set(
        &self,
        _server: &str,
        vars: &BTreeMap<&str, String>,
        want: Admin,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        match want {
            Admin::Ready => self
                .run("enable", &self.cfg.enable, vars, cancel)
                .await
                .map(|_| ()),
            Admin::Drain | Admin::Maint => self
                .run("drain", &self.cfg.drain, vars, cancel)
                .await
                .map(|_| ()),
        }
    }

    async fn states(
        &self,
        servers: &[(String, BTreeMap<&'static str, String>)],
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, ServerState>, LbError> {
        let mut out = BTreeMap::new();
        let Some(t) = &self.cfg.state else {
            return Ok(out);
        };
        for (name, vars) in servers {
            let text = self.run("state", t, vars, cancel).await?;
            let last = text.lines().last().unwrap_or("");
            match parse_word(last) {
                Some(s) => {
                    out.insert(name.clone(), s);
                }
                None => {
                    return Err(LbError::Refused(format!(
                        "the balancer's state command printed {last:?} for {name}; expected ready, drain, maint or down"
                    )))
                }
            }
        }
        Ok(out)
    }
}
