//! How the engine reaches a node: run a shell script there, stream its output line by line, and
//! kill it (with all its children) on timeout or cancel. `local` runs on this machine; `ssh`
//! runs over one multiplexed OpenSSH connection per node.
//!
//! A transport knows nothing about releases or phases: the engine builds every script (with all
//! values shell-quoted) and a transport only carries it. Remote text is sanitised here, before
//! anyone can print it.

pub mod kex;
pub mod local;
pub mod ssh;

use std::path::Path;
use std::sync::Arc;

use crate::inventory::{Node, TransportKind};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::event::Stream;

/// Lines of output, as they arrive.
pub type LineSender = mpsc::UnboundedSender<(Stream, String)>;

/// Most bytes of stdout kept in [`ExecOutcome::stdout`] (for reading state, not for logs).
pub const CAPTURE_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// A POSIX `sh` script; every value in it is already quoted.
    pub script: String,
    /// Kill the script (and its children) after this long.
    pub timeout: Option<Duration>,
}

impl ExecRequest {
    pub fn new(script: impl Into<String>) -> Self {
        ExecRequest {
            script: script.into(),
            timeout: None,
        }
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// How long the script may run: its timeout, else a day (a step always ends).
    pub fn limit(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(24 * 3600))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The script exited by itself, with this code (None: killed by a signal).
    Exited(Option<i32>),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It was cancelled (abort, quit) and was killed.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub ended: Ended,
    /// Captured stdout (up to [`CAPTURE_LIMIT`]), sanitised.
    pub stdout: String,
    /// The last lines of stderr, for error messages.
    pub stderr_tail: Vec<String>,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.ended == Ended::Exited(Some(0))
    }
    /// A one-line reason for a failure, for the operator.
    pub fn describe_failure(&self, timeout: Option<Duration>) -> String {
        let tail = self
            .stderr_tail
            .last()
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        match self.ended {
            Ended::Exited(Some(0)) => "ok".into(),
            Ended::Exited(Some(c)) => format!("exited with status {c}{tail}"),
            Ended::Exited(None) => format!("killed by a signal{tail}"),
            Ended::TimedOut => format!(
                "timed out after {} and was killed",
                timeout
                    .map(crate::util::format_duration)
                    .unwrap_or_else(|| "its limit".into())
            ),
            Ended::Cancelled => "cancelled and killed".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Exec(String),
    #[error("upload of {from} failed: {reason}")]
    Upload { from: String, reason: String },
}

#[async_trait]
pub trait Transport: Send + Sync {
    /// Open (or check) the connection; called by preflight before anything changes.
    async fn connect(&self) -> Result<(), TransportError>;
    /// Run a script, streaming sanitised lines to `lines`, killing it on timeout or `cancel`.
    async fn exec(
        &self,
        req: &ExecRequest,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, TransportError>;
    /// Copy a local file to a path on the node.
    async fn upload(&self, from: &Path, to: &str) -> Result<(), TransportError>;
    /// Close connections; further calls may reconnect.
    async fn close(&self) {}
}

/// The transport for a node: local nodes run `sh` in their deploy path on this machine; SSH
/// nodes connect lazily, on first use, and keep one connection.
pub fn for_node(node: &Node, base_dir: &Path) -> Result<Arc<dyn Transport>, TransportError> {
    match node.transport {
        TransportKind::Local => {
            let dir = if Path::new(&node.deploy_path).is_dir() {
                Path::new(&node.deploy_path)
            } else {
                base_dir
            };
            Ok(Arc::new(local::LocalTransport::new(dir)))
        }
        TransportKind::Ssh => Ok(Arc::new(ssh::SshTransport::for_node(node, base_dir)?)),
    }
}

/// Make remote text safe to print: drop ANSI escape sequences and other control characters
/// (tabs become spaces), so no remote output can move the cursor or repaint the console.
pub fn sanitize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte in @..~
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    chars.next();
                    // OSC/DCS/…: up to BEL or ST (ESC \)
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\t' => out.push_str("    "),
            '\u{9b}' => {
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Read `reader` line by line (lossy UTF-8, sanitised), send each line, and keep what the caller
/// wants: the whole text up to `capture` bytes, and the last few lines. `take` sees each raw
/// line first; a line it takes (returns true for) is neither sent nor kept. No reader: nothing.
pub async fn pump_lines<R: AsyncRead + Unpin>(
    reader: Option<R>,
    stream: Stream,
    lines: Option<LineSender>,
    capture: usize,
    mut take: impl FnMut(&str) -> bool,
) -> (String, Vec<String>) {
    let Some(reader) = reader else {
        return (String::new(), Vec::new());
    };
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut captured = String::new();
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                let raw = String::from_utf8_lossy(&buf);
                if take(&raw) {
                    continue;
                }
                let text = sanitize(&raw);
                if captured.len() + text.len() < capture {
                    captured.push_str(&text);
                    captured.push('\n');
                }
                if tail.len() == 5 {
                    tail.pop_front();
                }
                tail.push_back(text.clone());
                if let Some(tx) = &lines {
                    let _ = tx.send((stream, text));
                }
            }
        }
    }
    (captured, tail.into_iter().collect())
}

/// What a step's two pumps gathered once it ended: stdout's capture and stderr's last lines.
/// Each pump gets at most `grace` to finish, so a background child that kept the pipes open
/// cannot hold the step forever.
pub async fn gathered(
    out: tokio::task::JoinHandle<(String, Vec<String>)>,
    err: tokio::task::JoinHandle<(String, Vec<String>)>,
    grace: Duration,
) -> (String, Vec<String>) {
    let (stdout, _) = match tokio::time::timeout(grace, out).await {
        Ok(Ok(v)) => v,
        _ => (String::new(), Vec::new()),
    };
    let (_, stderr_tail) = match tokio::time::timeout(grace, err).await {
        Ok(Ok(v)) => v,
        _ => (String::new(), Vec::new()),
    };
    (stdout, stderr_tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(sanitize("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(sanitize("x\u{1b}[2J\u{1b}[Hy\r\u{8}z"), "xyz");
        assert_eq!(sanitize("tab\there"), "tab    here");
        assert_eq!(sanitize("ünïcødé ✓"), "ünïcødé ✓");
    }
}
