//! HAProxy through its runtime API: `set server BACKEND/SERVER state ready|drain|maint` to change
//! a server, `show stat` to read every server's status and current sessions. The admin socket is
//! reached directly on this machine (`via = "local"`) or on a node through its connection, with
//! `socat` there (`via = "lb-1"`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Admin, LbError, LoadBalancer, ServerState};
use crate::inventory::HaproxyBalancer;
use crate::transport::{ExecRequest, Transport};
use crate::util::sh_quote;

pub enum Via {
    Local,
    Node(String, Arc<dyn Transport>),
}

pub struct Haproxy {
    cfg: HaproxyBalancer,
    via: Via,
    timeout: Duration,
}

impl Haproxy {
    pub fn new(cfg: HaproxyBalancer, via: Via, timeout: Duration) -> Self {
        Haproxy { cfg, via, timeout }
    }

    fn place(&self) -> String {
        match &self.via {
            Via::Local => format!("{} on this machine", self.cfg.socket),
            Via::Node(n, _) => format!("{} on {n}", self.cfg.socket),
        }
    }

    /// Send one runtime-API command and return HAProxy's answer.
    pub async fn command(&self, cmd: &str, cancel: &CancellationToken) -> Result<String, LbError> {
        match &self.via {
            Via::Local => {
                let fut = async {
                    let mut s = tokio::net::UnixStream::connect(&self.cfg.socket)
                        .await
                        .map_err(|e| {
                            LbError::Unreachable(format!(
                                "cannot reach HAProxy's admin socket {}: {e}",
                                self.place()
                            ))
                        })?;
                    s.write_all(format!("{cmd}\n").as_bytes())
                        .await
                        .map_err(|e| {
                            LbError::Unreachable(format!(
                                "HAProxy's admin socket {} closed: {e}",
                                self.place()
                            ))
                        })?;
                    let mut out = String::new();
                    s.read_to_string(&mut out).await.map_err(|e| {
                        LbError::Unreachable(format!(
                            "HAProxy's admin socket {} closed: {e}",
                            self.place()
                        ))
                    })?;
                    Ok(out)
                };
                tokio::select! {
                    r = tokio::time::timeout(self.timeout, fut) => r.unwrap_or_else(|_| Err(LbError::Unreachable(format!(
                        "HAProxy's admin socket {} did not answer within {}", self.place(), crate::util::format_duration(self.timeout))))),
                    _ = cancel.cancelled() => Err(LbError::Unreachable("cancelled".into())),
                }
            }
            Via::Node(node, t) => {
                let script = format!(
                    "command -v socat >/dev/null 2>&1 || {{ echo 'socat is not installed on this node (apt-get install socat)' >&2; exit 127; }}\n\
                     printf '%s\\n' {cmd} | socat -t 5 - UNIX-CONNECT:{sock}\n",
                    cmd = sh_quote(cmd),
                    sock = sh_quote(&self.cfg.socket)
                );
                let o = t
                    .exec(
                        &ExecRequest::new(script).timeout(self.timeout),
                        None,
                        cancel,
                    )
                    .await
                    .map_err(|e| {
                        LbError::Unreachable(format!("cannot reach {node} for HAProxy: {e}"))
                    })?;
                if o.success() {
                    Ok(o.stdout)
                } else {
                    Err(LbError::Unreachable(format!(
                        "cannot reach HAProxy's admin socket {}: {}",
                        self.place(),
                        o.describe_failure(Some(self.timeout))
                    )))
                }
            }
        }
    }
}

/// Parse `show stat` CSV: servers of `backend` with their status and current sessions.
pub(crate) fn parse_stat(csv: &str, backend: &str) -> BTreeMap<String, ServerState> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(scur), Some(status)) =
        (col("pxname"), col("svname"), col("scur"), col("status"))
    else {
        return BTreeMap::new();
    };
    let qcur = col("qcur");
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() <= status.max(scur)
            || f[px] != backend
            || f[sv] == "BACKEND"
            || f[sv] == "FRONTEND"
        {
            continue;
        }
        let word = f[status].to_string();
        let upper = word.to_ascii_uppercase();
        let (admin, up) = if upper.starts_with("MAINT") {
            (Admin::Maint, None)
        } else if upper.starts_with("DRAIN") || upper.starts_with("NOLB") {
            (Admin::Drain, None)
        } else if upper.starts_with("UP") {
            (Admin::Ready, Some(true))
        } else if upper.starts_with("DOWN") {
            (Admin::Ready, Some(false))
        } else {
            (Admin::Ready, None)
        };
        out.insert(
            f[sv].to_string(),
            ServerState {
                admin,
                up,
                sessions: f[scur].parse().unwrap_or(0),
                queued: qcur
                    .and_then(|q| f.get(q))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(0),
                word,
            },
        );
    }
    out
}

#[async_trait]
impl LoadBalancer for Haproxy {
    fn describe(&self) -> String {
        format!("HAProxy backend {} at {}", self.cfg.backend, self.place())
    }

    fn reports_every_server(&self) -> bool {
        true // `show stat` lists every server of the backend
    }

    async fn set(
        &self,
        server: &str,
        _vars: &BTreeMap<&str, String>,
        want: Admin,
        cancel: &CancellationToken,
    ) -> Result<(), LbError> {
        let cmd = self.set_command(server, want);
        let answer = self.command(&cmd, cancel).await?;
        set_answer(&cmd, &answer)
    }

    async fn states(
        &self,
        _servers: &[(String, BTreeMap<&'static str, String>)],
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, ServerState>, LbError> {
        let csv = self.command("show stat", cancel).await?;
        self.stat(&csv)
    }

    /// `set server …; show stat` in one request: the runtime API runs them in order, so the
    /// state read is the one after the change.
    async fn set_and_read(
        &self,
        server: &str,
        _vars: &BTreeMap<&'static str, String>,
        want: Admin,
        cancel: &CancellationToken,
    ) -> Result<Option<ServerState>, LbError> {
        let cmd = self.set_command(server, want);
        let answer = self.command(&format!("{cmd}; show stat"), cancel).await?;
        let (set, csv) = match answer.find("# pxname") {
            Some(i) => answer.split_at(i),
            None => (answer.as_str(), ""),
        };
        set_answer(&cmd, set)?;
        Ok(self.stat(csv)?.remove(server))
    }
}

impl Haproxy {
    fn set_command(&self, server: &str, want: Admin) -> String {
        let word = match want {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        };
        format!("set server {}/{} state {word}", self.cfg.backend, server)
    }

    fn stat(&self, csv: &str) -> Result<BTreeMap<String, ServerState>, LbError> {
        if !csv.starts_with("# pxname") {
            return Err(LbError::Refused(format!(
                "HAProxy answered `show stat` with {:?}; is the socket at level admin?",
                csv.lines().next().unwrap_or("")
            )));
        }
        Ok(parse_stat(csv, &self.cfg.backend))
    }
}

/// HAProxy answers a `set server` it accepted with nothing.
fn set_answer(cmd: &str, answer: &str) -> Result<(), LbError> {
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(LbError::Refused(format!(
            "HAProxy refused `{cmd}`: {answer}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_stat_is_read_by_column_name() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
                   app,FRONTEND,,,0,1,2000,5,0,0,0,0,0,,,,,OPEN,\n\
                   app,web1,0,0,3,4,,10,0,0,,0,,0,0,0,0,UP,1\n\
                   app,web2,0,0,0,1,,10,0,0,,0,,0,0,0,0,DRAIN,1\n\
                   app,web3,0,0,0,1,,10,0,0,,0,,0,0,0,0,MAINT,1\n\
                   app,web4,0,0,0,1,,10,0,0,,0,,0,0,0,0,DOWN 1/2,1\n\
                   app,BACKEND,0,0,3,4,,10,0,0,,0,,0,0,0,0,UP,4\n\
                   other,web1,0,0,9,9,,10,0,0,,0,,0,0,0,0,DOWN,1\n";
        let s = parse_stat(csv, "app");
        assert_eq!(s.len(), 4);
        assert!(s["web1"].in_rotation());
        assert_eq!(s["web1"].sessions, 3);
        assert!(s["web2"].idle());
        assert_eq!(s["web2"].admin, Admin::Drain);
        assert_eq!(s["web3"].admin, Admin::Maint);
        assert!(!s["web4"].in_rotation());
    }
}
