//! A console in a real terminal: a private tmux server running one command in a 120×36
//! window, its screen read and keys sent the way an operator would. The server is killed when
//! the value is dropped, also when a test panics.

use std::process::Command;
use std::time::Duration;

use super::{tools, wait};

/// Each test gets its own tmux server.
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Tmux {
    pub socket: String,
    pub session: String,
}

impl Tmux {
    pub fn start(cmd: &str) -> Tmux {
        let t = Tmux {
            socket: format!(
                "deckhand-e2e-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
            session: "console".into(),
        };
        let ok = Command::new(tools::tmux())
            .args([
                "-L",
                &t.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                &t.session,
            ])
            .args(["-x", "120", "-y", "36", cmd])
            .status()
            .expect("start tmux");
        assert!(ok.success(), "tmux could not start");
        t
    }

    pub fn screen(&self) -> String {
        let out = Command::new(tools::tmux())
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-t",
                &self.session,
            ])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        Command::new(tools::tmux())
            .args(["-L", &self.socket, "send-keys", "-t", &self.session, keys])
            .status()
            .expect("tmux send-keys");
    }

    /// Poll the screen until `pred` holds; panics with the last screen after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        wait::until(
            what,
            Duration::from_secs(secs),
            Duration::from_millis(100),
            || {
                let s = self.screen();
                if pred(&s) {
                    return Ok(s);
                }
                Err(format!("the screen shows:\n{s}"))
            },
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(tools::tmux())
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
