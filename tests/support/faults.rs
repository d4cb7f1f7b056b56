//! Faults for the random campaign (`tests/campaign.rs`): the kinds it draws from, a small seeded
//! generator so a round replays from its seed, and the means of injecting each fault into the real
//! components of an sshd fleet: signals to the console, an sshd frozen with SIGSTOP, a node's SSH
//! sessions killed, a small tmpfs that can be filled (a node's full disk) or made read-only (the
//! journal directory), and the marker a node's health check reads to crash its app.
//!
//! Everything here undoes itself when dropped (a frozen server is thawed, a tmpfs is emptied and
//! unmounted), also when a test panics. It asserts nothing: the campaign does.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::procs;
use super::ssh::Server;

/// One kind of fault the campaign injects while a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The console SIGKILLed: no cleanup of any kind.
    ConsoleKill,
    /// SIGTERM to the console: it pauses at the next step boundary and leaves.
    ConsoleTerm,
    /// SIGHUP to the console (its terminal went away): like SIGTERM.
    ConsoleHup,
    /// A node's sshd (listener and sessions) stopped with SIGSTOP for a few seconds.
    SshdFrozen,
    /// A node's SSH sessions killed (its listener stays up).
    SessionsKilled,
    /// HAProxy killed, then started again (without its runtime state) a moment later.
    HaproxyRestart,
    /// The deploy path of a node full (a filler file on its tmpfs) until the run ends.
    DiskFull,
    /// The journal directory unwritable (its tmpfs read-only, or full when a journal is open).
    JournalUnwritable,
    /// A second operator's `deploy` while the run holds the lock.
    SecondDeploy,
    /// A second operator's `resume` of the live run.
    SecondResume,
    /// A node's app crashes (SIGKILL) during its health check.
    AppCrash,
}

impl Fault {
    pub const ALL: [Fault; 11] = [
        Fault::ConsoleKill,
        Fault::ConsoleTerm,
        Fault::ConsoleHup,
        Fault::SshdFrozen,
        Fault::SessionsKilled,
        Fault::HaproxyRestart,
        Fault::DiskFull,
        Fault::JournalUnwritable,
        Fault::SecondDeploy,
        Fault::SecondResume,
        Fault::AppCrash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ConsoleKill => "console SIGKILL",
            Fault::ConsoleTerm => "console SIGTERM",
            Fault::ConsoleHup => "console SIGHUP",
            Fault::SshdFrozen => "sshd frozen",
            Fault::SessionsKilled => "SSH sessions killed",
            Fault::HaproxyRestart => "HAProxy restarted",
            Fault::DiskFull => "disk full",
            Fault::JournalUnwritable => "journal unwritable",
            Fault::SecondDeploy => "second deploy",
            Fault::SecondResume => "second resume",
            Fault::AppCrash => "app crash in health",
        }
    }
}

/// SplitMix64: small, seedable, and good enough to draw faults and moments. Round `k` of seed `s`
/// gets its own stream, so it replays alone.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The stream of round `round` of the campaign seeded with `seed`.
    pub fn for_round(seed: u64, round: u64) -> Rng {
        let mut r = Rng(seed ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// Send `sig` to `pid` (a process the test started).
pub fn signal(pid: i32, sig: libc::c_int) {
    if pid <= 1 {
        return;
    }
    // SAFETY: a plain syscall on a pid the caller owns.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A server stopped with SIGSTOP (its listener and every session below it); thawed with
/// SIGCONT by [`Frozen::thaw`] or when dropped.
pub struct Frozen {
    pids: Vec<i32>,
}

impl Frozen {
    pub fn freeze(server: &Server) -> Frozen {
        let pids = server
            .pid()
            .map(|p| procs::tree(p as i32))
            .unwrap_or_default();
        for p in &pids {
            signal(*p, libc::SIGSTOP);
        }
        Frozen { pids }
    }

    pub fn thaw(&mut self) {
        for p in self.pids.drain(..) {
            signal(p, libc::SIGCONT);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// Kill every session a server serves (the processes below its listener), the listener stays:
/// what a node's network blip or an OOM kill of its sessions looks like. Returns how many.
pub fn kill_sessions(server: &Server) -> usize {
    let Some(listener) = server.pid() else {
        return 0;
    };
    let below: Vec<i32> = procs::tree(listener as i32)
        .into_iter()
        .filter(|p| *p != listener as i32)
        .collect();
    for p in &below {
        procs::kill(*p);
    }
    below.len()
}

/// A small tmpfs mounted over a directory (a node's deploy path, the journal directory): it can
/// be filled with a filler file (ENOSPC for everyone, root too) and made read-only. Dropping it
/// makes it writable again, empties nothing it did not fill, and unmounts it.
pub struct Tmpfs {
    pub path: PathBuf,
    filler: PathBuf,
    mounted: bool,
    read_only: bool,
}

fn mount(args: &[&str], path: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (`"4m"`) over `path` (which must exist), its root owned by
    /// `owner` (uid, gid) with `mode`. What `path` held is hidden until it is unmounted.
    pub fn mount(path: &Path, size: &str, owner: Option<(u32, u32)>, mode: u32) -> Tmpfs {
        let mut opts = format!("size={size},mode={mode:o}");
        if let Some((uid, gid)) = owner {
            opts.push_str(&format!(",uid={uid},gid={gid}"));
        }
        mount(&["-t", "tmpfs", "-o", &opts, "tmpfs"], path).unwrap_or_else(|e| {
            panic!(
                "cannot mount a tmpfs on {} (the campaign needs root and CAP_SYS_ADMIN): {e}",
                path.display()
            )
        });
        Tmpfs {
            path: path.to_path_buf(),
            filler: path.join(".campaign-filler"),
            mounted: true,
            read_only: false,
        }
    }

    /// Fill it: a filler file grows until the tmpfs has no byte left.
    pub fn fill(&self) {
        use std::io::Write;
        let Ok(mut f) = std::fs::File::create(&self.filler) else {
            return;
        };
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // The last partial page too.
        while f.write_all(&chunk[..512]).is_ok() {}
        while f.write_all(&chunk[..1]).is_ok() {}
        let _ = f.flush();
    }

    /// Remove the filler.
    pub fn empty(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }

    /// Make it read-only. The kernel refuses while a file on it is open for writing (a running
    /// journal): then it is filled instead, so writes fail all the same (ENOSPC instead of
    /// EROFS). Returns whether it went read-only.
    pub fn make_unwritable(&mut self) -> bool {
        if mount(&["-o", "remount,ro"], &self.path).is_ok() {
            self.read_only = true;
            return true;
        }
        self.fill();
        false
    }

    /// Writable and empty of the filler again.
    pub fn restore(&mut self) {
        if self.read_only && mount(&["-o", "remount,rw"], &self.path).is_ok() {
            self.read_only = false;
        }
        self.empty();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        self.restore();
        let ok = Command::new("umount")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open on it: detach it now, the kernel frees it later.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        self.mounted = false;
    }
}
