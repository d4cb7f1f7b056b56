//! HAProxy through its runtime API: `set server BACKEND/SERVER state ready|drain|maint` to change
//! a server, `show stat` to read every server's status and current sessions, and `show servers
//! state BACKEND` for its admin state: `show stat` says only `DOWN` for a server that is down,
//! drained or not, so the drain of a node whose app crashed can only be read there. The admin socket is
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

/// `srv_admin_state` bits of `show servers state` (HAProxy's `enum srv_admin`): forced, inherited,
/// configuration, resolver and health-check maintenance; forced and inherited drain.
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN: u32 = 0x08 | 0x10;

/// Parse `show servers state` (version 1): each server of `backend` with its admin state.
pub(crate) fn parse_servers_state(text: &str, backend: &str) -> BTreeMap<String, Admin> {
    let mut out = BTreeMap::new();
    let mut cols: Vec<&str> = Vec::new();
    for l in text.lines() {
        if let Some(h) = l.strip_prefix("# be_id") {
            cols = std::iter::once("be_id")
                .chain(h.split_whitespace())
                .collect();
            continue;
        }
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let (Some(be), Some(sv), Some(ad)) =
            (col("be_name"), col("srv_name"), col("srv_admin_state"))
        else {
            continue;
        };
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() <= be.max(sv).max(ad) || f[be] != backend {
            continue;
        }
        let Ok(bits) = f[ad].parse::<u32>() else {
            continue;
        };
        let admin = if bits & ADMIN_MAINT != 0 {
            Admin::Maint
        } else if bits & ADMIN_DRAIN != 0 {
            Admin::Drain
        } else {
            Admin::Ready
        };
        out.insert(f[sv].to_string(), admin);
    }
    out
}

/// Parse HAProxy's answer to `show stat` (CSV), optionally followed by `show servers state
/// BACKEND`: servers of `backend` with their status, current sessions and admin state. The admin
/// state comes from `show servers state` when it is there (`show stat` reports a drained server
/// that is down as `DOWN`, and its drain only shows there), else from the status word.
pub(crate) fn parse_stat(answer: &str, backend: &str) -> BTreeMap<String, ServerState> {
    let (csv, admins) = match answer.find("# be_id") {
        Some(i) => (&answer[..i], parse_servers_state(&answer[i..], backend)),
        None => (answer, BTreeMap::new()),
    };
    let mut out = parse_stat_csv(csv, backend);
    for (name, s) in out.iter_mut() {
        if let Some(admin) = admins.get(name) {
            if *admin != Admin::Ready && s.admin != *admin {
                s.word = format!("{} ({})", s.word, admin_word(*admin));
            }
            s.admin = *admin;
        }
    }
    out
}

fn admin_word(a: Admin) -> &'static str {
    match a {
        Admin::Ready => "ready",
        Admin::Drain => "drain",
        Admin::Maint => "maint",
    }
}

/// Parse `show stat` CSV alone: the admin state is guessed from the status word.
fn parse_stat_csv(csv: &str, backend: &str) -> BTreeMap<String, ServerState> {
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
        let csv = self
            .command(&format!("show stat; {}", self.admin_command()), cancel)
            .await?;
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
        let answer = self
            .command(
                &format!("{cmd}; show stat; {}", self.admin_command()),
                cancel,
            )
            .await?;
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
        format!(
            "set server {}/{} state {}",
            self.cfg.backend,
            server,
            admin_word(want)
        )
    }

    /// The servers' admin states, read after `show stat` in the same request.
    fn admin_command(&self) -> String {
        format!("show servers state {}", self.cfg.backend)
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

    /// What HAProxy 2.6 answers to `set server app/a state drain; show stat; show servers state
    /// app` while server a's health checks fail: `show stat` says only DOWN, the admin state
    /// (8: forced drain) says the drain took.
    #[test]
    fn a_drained_server_that_is_down_reads_as_drained() {
        let answer = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
                      app,a,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
                      app,b,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
                      app,c,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n\
                      app,BACKEND,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n\
                      \n1\n\
                      # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
                      3 app 1 a 127.0.0.1 0 8 1 1 0 8 2 0 6 0 0 0 - 18998 - 0 0 - - 0\n\
                      3 app 2 b 127.0.0.1 0 0 1 1 2 8 2 0 6 0 0 0 - 18997 - 0 0 - - 0\n\
                      3 app 3 c 127.0.0.1 2 1 1 1 2 8 2 0 6 0 0 0 - 18996 - 0 0 - - 0\n\n";
        let s = parse_stat(answer, "app");
        assert_eq!(s["a"].admin, Admin::Drain, "{:?}", s["a"]);
        assert_eq!(s["a"].up, Some(false));
        assert_eq!(s["a"].word, "DOWN (drain)");
        assert_eq!(s["b"].admin, Admin::Ready);
        assert_eq!(s["c"].admin, Admin::Maint);
        assert!(!s["a"].in_rotation() && !s["b"].in_rotation());
    }
}
