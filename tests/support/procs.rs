//! This machine's processes as the tests see them, read from `/proc`: who runs, with which
//! parent, process group, command line and environment, and a SIGKILL for the ones a fixture or
//! a test started. It reads any process but kills only the pids it is given: choosing which
//! processes are the test's own is the caller's job.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// `R`, `S`, `Z` (a zombie: dead, not yet reaped), …
    pub state: char,
    pub cmdline: String,
    pub environ: Vec<String>,
}

impl Proc {
    /// Running or sleeping, not a zombie.
    pub fn live(&self) -> bool {
        self.state != 'Z'
    }
}

/// A snapshot of this machine's processes.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name (which may hold spaces and parentheses): state, ppid, pgrp, …
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let state = fields.first().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp = fields.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(Proc {
            pid,
            ppid,
            pgrp,
            state,
            cmdline,
            environ,
        });
    }
    out
}

/// Live processes (zombies aside) of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.live() && p.pgrp == pgid)
        .map(|p| p.pid)
        .collect()
}

/// `pid` and every process below it, parents before their children.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut kids: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in processes() {
        kids.entry(p.ppid).or_default().push(p.pid);
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        if let Some(k) = kids.get(&tree[i]) {
            tree.extend(k.iter().copied());
        }
        i += 1;
    }
    tree
}

/// Is a process with this pid still alive?
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// SIGKILL `pid` (a negative pid: its whole process group); a process already gone is fine.
/// 0, 1 and -1 (this group, init, everything) are refused: they only come from a bad pid file.
pub fn kill(pid: i32) {
    if pid.abs() <= 1 {
        return;
    }
    // SAFETY: a plain syscall; callers pass pids of processes their test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// SIGKILL the process whose pid the file at `path` holds, if it holds one.
pub fn kill_pid_file(path: &Path) {
    if let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        kill(pid);
    }
}
