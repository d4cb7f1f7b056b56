//! The local transport: scripts run with `sh` on this machine, for demo nodes
//! (`transport = "local"`) and for `where = "local"` phases (often on a jump host that others
//! share).
//!
//! Each script gets its own process group, so a timeout or an abort kills the script and every
//! child it started (TERM, then KILL after a short grace), and nothing it spawned outlives it.
//! The script reaches `sh` on its stdin, never in its argv: a value interpolated into a phase
//! (`${DB_PASSWORD}`) must not show in `ps` for every user of the machine. The script itself
//! then runs with stdin closed, as before. This module must not decide what runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{
    cut_note, gathered, pump_lines, Collector, Ended, ExecOutcome, ExecRequest, LineSender, Stream,
    Transport, TransportError, CAPTURE_LIMIT,
};

/// Time a killed script's group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// What `sh -c` runs: read the script from stdin, close stdin, run the script. (`eval` of a
/// variable: no second shell, and its errors read `sh: 2: eval: …` as on a node.)
const RUNNER: &str =
    "dh_s=$(cat; printf .) || exit 125\nexec </dev/null\neval \"unset -v dh_s;${dh_s%.}\"";

#[derive(Debug, Clone)]
pub struct LocalTransport {
    /// Working directory of every script.
    pub cwd: PathBuf,
}

impl LocalTransport {
    pub fn new(cwd: impl Into<PathBuf>) -> Self {
        LocalTransport { cwd: cwd.into() }
    }
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: plain syscall; a stale group id only yields ESRCH.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

#[async_trait]
impl Transport for LocalTransport {
    async fn connect(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn exec(
        &self,
        req: &ExecRequest,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, TransportError> {
        let cwd = if self.cwd.is_dir() {
            self.cwd.clone()
        } else {
            PathBuf::from("/")
        };
        if req.script.contains('\0') {
            return Err(TransportError::Exec(
                "cannot run the step on this machine: the script holds a NUL byte, which no shell can run".into(),
            ));
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(RUNNER)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Exec(format!("cannot start sh on this machine: {e}")))?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let stdin = child.stdin.take();
        let script = req.script.clone();
        // Its own task: a script longer than a pipe holds must not wait for us.
        let feed = tokio::spawn(async move {
            if let Some(mut w) = stdin {
                let _ = w.write_all(script.as_bytes()).await;
                let _ = w.shutdown().await;
            }
        });
        let sink = Arc::new(std::sync::Mutex::new(Collector::new(
            lines.cloned(),
            CAPTURE_LIMIT,
        )));
        let stop = CancellationToken::new();
        let out_task = tokio::spawn(pump_lines(
            child.stdout.take(),
            Stream::Stdout,
            sink.clone(),
            stop.clone(),
        ));
        let err_task = tokio::spawn(pump_lines(
            child.stderr.take(),
            Stream::Stderr,
            sink.clone(),
            stop.clone(),
        ));

        let timeout = req.limit();
        let ended = tokio::select! {
            status = child.wait() => Ended::Exited(status.ok().and_then(|s| s.code())),
            _ = tokio::time::sleep(timeout) => Ended::TimedOut,
            _ = cancel.cancelled() => Ended::Cancelled,
        };
        if ended != Ended::Exited(Some(0)) {
            // Whatever ended the script, nothing of its group may live on.
            kill_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
            {
                kill_group(pgid, libc::SIGKILL);
                let _ = child.wait().await;
            }
            kill_group(pgid, libc::SIGKILL);
        }
        feed.abort();
        // A background child that kept the pipes open must not hold us forever.
        let grace = Duration::from_millis(if ended == Ended::Exited(Some(0)) {
            2000
        } else {
            200
        });
        let whole = gathered(out_task, err_task, &stop, grace).await;
        let mut collected = match Arc::try_unwrap(sink) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            // The pumps are done, so this does not happen; never lose the output if it does.
            Err(shared) => {
                let mut c = shared.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::replace(&mut *c, Collector::new(None, 0))
            }
        };
        if !whole {
            log::warn!("local step: {}", cut_note(grace));
            collected.note(cut_note(grace));
        }
        let (stdout, stderr_tail) = collected.finish();
        Ok(ExecOutcome {
            ended,
            stdout,
            stderr_tail,
        })
    }

    async fn upload(&self, from: &Path, to: &str) -> Result<(), TransportError> {
        let err = |reason: String| TransportError::Upload {
            from: from.display().to_string(),
            reason,
        };
        if let Some(parent) = Path::new(to).parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| err(e.to_string()))?;
        }
        // Copied beside its final name and renamed, so nobody sees half a file.
        let partial = format!("{to}.deckhand-partial");
        let copied = match tokio::fs::copy(from, &partial).await {
            Ok(_) => tokio::fs::rename(&partial, to).await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(err(e.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_and_captures() {
        let t = LocalTransport::new("/");
        let out = t
            .exec(
                &ExecRequest::new("echo hello; echo oops >&2; exit 3"),
                None,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(out.ended, Ended::Exited(Some(3)));
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr_tail, vec!["oops".to_string()]);
    }

    #[tokio::test]
    async fn output_read_before_the_grace_ran_out_is_kept() {
        // A child left in the background holds the pipes past the grace: the pumps are
        // stopped, and what they had read stays (it used to be dropped whole).
        let t = LocalTransport::new("/");
        let out = t
            .exec(
                &ExecRequest::new("echo first; echo warn >&2; (sleep 2.5; echo late) &"),
                None,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "first\n");
        assert_eq!(out.stderr_tail.len(), 2, "{:?}", out.stderr_tail);
        assert!(out.stderr_tail[0].contains("cut off"));
        assert_eq!(out.stderr_tail[1], "warn");
    }

    #[tokio::test]
    async fn a_script_reads_as_sh_reads_it() {
        let t = LocalTransport::new("/");
        let out = t
            .exec(
                &ExecRequest::new("cat; echo \"[$0][$1]\"\nnot_a_command_z\nexit 4"),
                None,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(out.ended, Ended::Exited(Some(4)));
        assert_eq!(out.stdout, "[sh][]\n");
        assert_eq!(
            out.stderr_tail,
            vec!["sh: 2: eval: not_a_command_z: not found".to_string()]
        );
        let nul = t
            .exec(&ExecRequest::new("a\0b"), None, &CancellationToken::new())
            .await;
        assert!(nul.is_err());
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        let script = format!(
            "(sleep 2; touch {}) & sleep 30",
            crate::util::sh_quote(&marker.display().to_string())
        );
        let t = LocalTransport::new("/");
        let out = t
            .exec(
                &ExecRequest::new(script).timeout(Duration::from_millis(200)),
                None,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(out.ended, Ended::TimedOut);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a child of the killed script survived and ran"
        );
    }
}
