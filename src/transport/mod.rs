//! How the engine reaches a node: run a shell script there, stream its output line by line, and
//! kill it (with all its children) on timeout or cancel. `local` runs on this machine; `ssh`
//! runs through a few long-lived shells (`shell`) on one multiplexed OpenSSH connection per node.
//! Either way a script travels on a pipe, never in a process's argv, where every user of the
//! machine could read it.
//!
//! A transport knows nothing about releases or phases: the engine builds every script (with all
//! values shell-quoted) and a transport only carries it. Remote text is sanitised here, before
//! anyone can print it, and what a step printed is gathered here (`Collector`): what was read
//! is never dropped; when the rest could not be read, the outcome says so.

pub mod connect;
pub mod kex;
pub mod local;
mod shell;
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
    /// What a step costs on this link beyond its script's own time: the request's way to the
    /// node, starting it there and the answer's way back, less what starting the script the
    /// usual way (a shell of its own) would cost anyway. SSH measures it on the node when the
    /// run has done with the node ([`Transport::settle`]; `ssh.rs`, `measure`); until then,
    /// the fastest script run so far. The time
    /// report counts this share of every step as deckhand's, not the step's. Zero where a step
    /// is a process on this machine, or before any script ran.
    fn floor(&self) -> Duration {
        Duration::ZERO
    }
    /// The node's turn (or its rollback) begins: a moment to make ready, in the background,
    /// what its steps will want beyond what preflight needed. SSH opens a second shell here
    /// rather than at connect (`ssh.rs`, `prepare`); never a connection.
    fn prepare(&self) {}
    /// The run is done with this node for now (its turn is over): a moment to measure what
    /// [`Transport::floor`] reports, in the background, away from the connections' start.
    fn settle(&self) {}
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

/// What a step printed, gathered as it arrives: every line sanitised and passed on to `lines`,
/// stdout kept from the start up to a limit (for reading state, not for logs), and the last
/// lines of stderr (for messages). Shared by both transports, so a line reads the same however
/// it travelled.
pub(crate) struct Collector {
    lines: Option<LineSender>,
    capture: usize,
    stdout: String,
    /// Set once a line did not fit: what is kept stays a prefix of the output.
    stdout_full: bool,
    tail: std::collections::VecDeque<String>,
    notes: Vec<String>,
}

/// How many lines of stderr a step keeps for its failure message.
const TAIL_LINES: usize = 5;

impl Collector {
    pub(crate) fn new(lines: Option<LineSender>, capture: usize) -> Self {
        Collector {
            lines,
            capture,
            stdout: String::new(),
            stdout_full: false,
            tail: std::collections::VecDeque::new(),
            notes: Vec::new(),
        }
    }

    /// One line of output as read (without its `\n`; a trailing `\r` is dropped too).
    pub(crate) fn line(&mut self, stream: Stream, mut raw: &[u8]) {
        while let Some(r) = raw.strip_suffix(b"\r") {
            raw = r;
        }
        let text = sanitize(&String::from_utf8_lossy(raw));
        match stream {
            Stream::Stdout => {
                if !self.stdout_full && self.stdout.len() + text.len() < self.capture {
                    self.stdout.push_str(&text);
                    self.stdout.push('\n');
                } else {
                    self.stdout_full = true;
                }
            }
            Stream::Stderr => {
                if self.tail.len() == TAIL_LINES {
                    self.tail.pop_front();
                }
                self.tail.push_back(text.clone());
            }
        }
        if let Some(tx) = &self.lines {
            let _ = tx.send((stream, text));
        }
    }

    /// Something the operator should know about how the output was read (it was cut short,
    /// the processes could not be confirmed gone). It goes before the stderr lines, so a failure
    /// message still quotes the step's own last line.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Captured stdout and the stderr tail (notes first).
    pub(crate) fn finish(self) -> (String, Vec<String>) {
        let mut tail = self.notes;
        tail.extend(self.tail);
        (self.stdout, tail)
    }
}

/// Read `reader` line by line into `sink` until its end, or until `stop` fires; then what was
/// read of a last, unfinished line is kept as a line too. Returns whether the end was reached.
pub(crate) async fn pump_lines<R: AsyncRead + Unpin>(
    reader: Option<R>,
    stream: Stream,
    sink: Arc<std::sync::Mutex<Collector>>,
    stop: CancellationToken,
) -> bool {
    let Some(reader) = reader else {
        return true;
    };
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let ended = loop {
        let read = tokio::select! {
            r = reader.read_until(b'\n', &mut buf) => r,
            _ = stop.cancelled() => break false,
        };
        match read {
            Ok(0) | Err(_) => break true,
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                if let Ok(mut c) = sink.lock() {
                    c.line(stream, &buf);
                }
                buf.clear();
            }
            // The last line, without a newline: it is complete at the end of the stream.
            Ok(_) => {}
        }
    };
    if !buf.is_empty() {
        if let Ok(mut c) = sink.lock() {
            c.line(stream, &buf);
        }
    }
    ended
}

/// Wait for a step's two pumps after the step itself ended. Each gets at most `grace` to reach
/// the end of its stream, so a background child that kept a pipe open cannot hold the step
/// forever; a pump still reading then is stopped, keeping what it read. Returns whether both
/// streams were read to their end.
pub(crate) async fn gathered(
    out: tokio::task::JoinHandle<bool>,
    err: tokio::task::JoinHandle<bool>,
    stop: &CancellationToken,
    grace: Duration,
) -> bool {
    let both = async { matches!((out.await, err.await), (Ok(true), Ok(true))) };
    tokio::pin!(both);
    match tokio::time::timeout(grace, &mut both).await {
        Ok(whole) => whole,
        Err(_) => {
            stop.cancel();
            both.await;
            false
        }
    }
}

/// The note for output cut off after a step ended.
pub(crate) fn cut_note(grace: Duration) -> String {
    format!(
        "output after the step ended was cut off after {}: a process it started still holds its output open (redirect that process's output, e.g. `>app.log 2>&1`)",
        crate::util::format_duration(grace)
    )
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
