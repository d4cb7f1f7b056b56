//! A real HAProxy on 127.0.0.1 in front of test nodes' HTTP apps: one backend `app` whose
//! servers it health-checks on /up, its admin socket for deckhand's balancer driver and for the
//! tests' own questions (`show stat`). It is killed when dropped; it never starts the apps.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, tools, wait};

pub struct Haproxy {
    child: Option<Child>,
    pub cfg: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
}

impl Haproxy {
    /// Start HAProxy with one backend `app` of these (server name, port) pairs, health-checked
    /// every 300 ms on /up.
    pub fn start(dir: &Path, servers: &[(String, u16)]) -> Haproxy {
        let port = free_port();
        let socket = dir.join("haproxy.sock");
        let mut cfg = format!(
            "global\n  stats socket {} mode 600 level admin\n  maxconn 512\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 0\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend app\n\
             backend app\n  balance roundrobin\n  option httpchk GET /up\n  default-server inter 300ms fall 2 rise 1\n",
            socket.display()
        );
        for (name, p) in servers {
            cfg.push_str(&format!("  server {name} 127.0.0.1:{p} check\n"));
        }
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut h = Haproxy {
            child: None,
            cfg: cfg_path,
            socket,
            port,
        };
        h.restart();
        h
    }

    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.socket);
        let log = self.cfg.with_file_name("haproxy.log");
        let log_file = std::fs::File::create(&log).expect("HAProxy's log file");
        let child = Command::new(tools::haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start haproxy");
        self.child = Some(child);
        wait::until(
            "HAProxy's admin socket",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                // The socket's file appears when HAProxy binds it, a moment before it listens:
                // ready once a connection is accepted.
                match std::os::unix::net::UnixStream::connect(&self.socket) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!(
                        "{}: {e}; HAProxy said:\n{}",
                        self.socket.display(),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )),
                }
            },
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a runtime-API command (for test setup).
    pub fn command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("admin socket");
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// A server's status as HAProxy reports it (`UP`, `DRAIN`, `MAINT`, …).
    pub fn status(&self, server: &str) -> String {
        let stat = self.command("show stat");
        stat.lines()
            .find(|l| l.starts_with(&format!("app,{server},")))
            .and_then(|l| l.split(',').nth(17))
            .unwrap_or_else(|| panic!("no server {server} in:\n{stat}"))
            .to_string()
    }

    /// Wait until every listed server is UP as HAProxy sees it.
    pub fn wait_up(&self, servers: &[&str]) {
        wait::until(
            &format!("{servers:?} to be UP in HAProxy"),
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                let stat = self.command("show stat");
                let up = servers.iter().all(|s| {
                    stat.lines()
                        .any(|l| l.starts_with(&format!("app,{s},")) && l.contains(",UP,"))
                });
                if up {
                    return Ok(());
                }
                Err(format!("HAProxy's stat:\n{stat}"))
            },
        );
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}
