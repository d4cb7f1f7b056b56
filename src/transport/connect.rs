//! The TCP connection under a node's SSH master, made by deckhand itself.
//!
//! # Why
//! OpenSSH's client turns Nagle's algorithm off (`TCP_NODELAY`) only for interactive sessions,
//! and a master started for `-N` is not one. During the key exchange it then writes a small
//! packet while its previous one is still unacknowledged, and the kernel holds the new one back
//! until the server's delayed acknowledgement comes: about 40 ms, twice per login (measured on
//! loopback with tcpdump: a login took 140 ms, of which 80 ms were these two waits). On a real
//! link the same waits cost up to a round trip each, or the peer's delayed-ACK timer.
//!
//! # How
//! ssh can be handed a connected socket: with `ProxyUseFdpass yes`, its `ProxyCommand` connects
//! and passes the socket back over its stdout (`SCM_RIGHTS`) and exits; ssh then speaks to the
//! server on that socket directly, with no process in between. The deckhand binary is that
//! command (`deckhand __ssh-connect HOST PORT SECONDS LOG`, never typed by a person): it tries
//! each address of the host in turn within the connect timeout, sets `TCP_NODELAY`, and hands
//! the socket over. Its complaints go to LOG in the words ssh itself would use ("connect to host
//! … port …: Connection refused"), so a failed connect reads as it always did.
//!
//! It is used only where nothing else decides how the node is reached: no jump host in the
//! inventory, and no `ProxyCommand`, `ProxyJump`, `BindAddress`, `BindInterface`, address family
//! or connection attempts other than the defaults in the ssh configuration that applies to the
//! node, as `ssh -G` resolves it (the user's `~/.ssh/config` and the system's included). Only a
//! program that has the entry point can be the helper: the `deckhand` binary says so at start
//! ([`set_helper`]); a program that does not (a library user) connects as ssh does, and so does
//! every connection when `DECKHAND_SSH_CONNECT=ssh` is set.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{glob_match, split_keyword};

/// The first argument that makes the `deckhand` binary the connect helper.
pub const HELPER_ARG: &str = "__ssh-connect";

static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// Use `program` (a binary whose `main` hands [`HELPER_ARG`] to [`helper_main`]) to open the
/// TCP connections of SSH masters. The first call wins.
pub fn set_helper(program: PathBuf) {
    let _ = HELPER.set(program);
}

/// Set to `ssh` in the environment, this leaves every connection to ssh itself (for comparing,
/// or should a network need ssh's own way of connecting that `ssh -G` does not show).
pub const OFF_VAR: &str = "DECKHAND_SSH_CONNECT";

/// The helper program, if one was set, it is still there and the environment does not say no.
pub(crate) fn helper() -> Option<&'static Path> {
    if std::env::var_os(OFF_VAR).is_some_and(|v| v == "ssh") {
        return None;
    }
    HELPER.get().map(PathBuf::as_path).filter(|p| p.is_file())
}

/// Whether the ssh configuration that applies to a node (the output of `ssh -G`) leaves the
/// connection to ssh's defaults, so that the helper may make it.
pub(crate) fn plain_connection(resolved: &str) -> bool {
    resolved.lines().all(|line| {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        match key.to_ascii_lowercase().as_str() {
            "proxycommand" | "proxyjump" => value.eq_ignore_ascii_case("none"),
            "bindaddress" | "bindinterface" => value.is_empty(),
            "addressfamily" => value.eq_ignore_ascii_case("any"),
            "connectionattempts" => value == "1",
            _ => true,
        }
    })
}

/// Keywords that decide how ssh reaches a host; where none appears in the ssh configuration
/// files at all, `ssh -G` has nothing to say about them and is not asked.
const CONNECTION_KEYWORDS: &[&str] = &[
    "proxycommand",
    "proxyjump",
    "bindaddress",
    "bindinterface",
    "addressfamily",
    "connectionattempts",
];

/// Whether none of `files` (nor what they `Include`) says anything about how a host is reached,
/// read as text: then every node the files apply to connects the plain way, and `ssh -G` need
/// not be asked per node. A file or an `Include` that cannot be followed (a `%` token, a
/// directory that cannot be read) counts as saying something. Read once per process.
pub(crate) fn configs_are_plain(files: &[PathBuf]) -> bool {
    static SEEN: std::sync::Mutex<Vec<(Vec<PathBuf>, bool)>> = std::sync::Mutex::new(Vec::new());
    if let Ok(seen) = SEEN.lock() {
        if let Some((_, plain)) = seen.iter().find(|(f, _)| f == files) {
            return *plain;
        }
    }
    let plain = files.iter().all(|f| file_is_plain(f, 0));
    if let Ok(mut seen) = SEEN.lock() {
        seen.push((files.to_vec(), plain));
    }
    plain
}

fn file_is_plain(file: &Path, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(_) => return false,
    };
    // Everything here is reached from the node's generated config, which ssh reads as a user's
    // file (-F): a relative Include is then under ~/.ssh, wherever the including file is.
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return false;
    };
    for line in text.lines() {
        let (key, rest) = split_keyword(line.trim());
        let key = key.to_ascii_lowercase();
        if CONNECTION_KEYWORDS.contains(&key.as_str()) {
            return false;
        }
        if key == "include" {
            for pattern in rest.split_whitespace() {
                if pattern.contains('%') || pattern.contains('"') {
                    return false;
                }
                let pattern = match pattern.strip_prefix("~/") {
                    Some(r) => home.join(r),
                    None if pattern.starts_with('/') => PathBuf::from(pattern),
                    None => home.join(".ssh").join(pattern),
                };
                let Some(files) = expand(&pattern) else {
                    return false;
                };
                if !files.iter().all(|f| file_is_plain(f, depth + 1)) {
                    return false;
                }
            }
        }
    }
    true
}

/// The files a pattern names (`*` and `?` in its last part only), or None if it cannot say.
fn expand(pattern: &Path) -> Option<Vec<PathBuf>> {
    let name = pattern.file_name()?.to_str()?;
    if !name.contains(['*', '?']) {
        return Some(vec![pattern.to_path_buf()]);
    }
    let dir = pattern.parent()?;
    if dir.to_str()?.contains(['*', '?', '[']) {
        return None;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    Some(out)
}

/// The lines that make ssh use the helper (first in the node's generated config: ssh keeps the
/// first value it reads).
pub(crate) fn config_lines(program: &Path, timeout: Duration, log: &Path) -> String {
    let quote = |p: &Path| crate::util::sh_quote(&p.display().to_string()).replace('%', "%%");
    format!(
        "ProxyCommand {} {HELPER_ARG} %h %p {} {}\nProxyUseFdpass yes\n",
        quote(program),
        timeout.as_secs().max(1),
        quote(log)
    )
}

/// The helper itself: `args` are what follows [`HELPER_ARG`]. Returns the exit status.
pub fn helper_main(args: &[OsString]) -> i32 {
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let [host, port, secs, log] = text.as_slice() else {
        eprintln!("deckhand {HELPER_ARG}: expects HOST PORT SECONDS LOG (ssh runs it; do not run it by hand)");
        return 2;
    };
    let say = |what: String| {
        let line = format!("ssh: {what}\n");
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if written.is_err() {
            eprint!("{line}");
        }
        255
    };
    let (Ok(port), Ok(secs)) = (port.parse::<u16>(), secs.parse::<u64>()) else {
        return say(format!("bad port {port:?} or timeout {secs:?}"));
    };
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return say(format!(
                "Could not resolve hostname {host}: {}",
                plain_error(&e)
            ))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(secs.max(1));
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = Some(std::io::Error::from(std::io::ErrorKind::TimedOut));
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return match send_fd(stream.as_raw_fd()) {
                    Ok(()) => 0,
                    Err(e) => say(format!("cannot hand the connection to ssh: {e}")),
                };
            }
            Err(e) => last = Some(e),
        }
    }
    let why = match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => "Connection timed out".to_string(),
        Some(e) => plain_error(&e),
        None => "no address".to_string(),
    };
    say(format!("connect to host {host} port {port}: {why}"))
}

/// An I/O error's words without Rust's " (os error N)".
fn plain_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Pass `fd` over stdout (a socket ssh made for this) with one byte of data, as ssh expects.
fn send_fd(fd: i32) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the sendmsg call, and
    // the control buffer is CMSG_SPACE bytes for one descriptor, as CMSG_FIRSTHDR/CMSG_DATA need.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(std::io::Error::other("no room for the descriptor"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        loop {
            if libc::sendmsg(1, &msg, 0) >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_left_to_ssh_defaults_is_made_by_the_helper() {
        let plain = "hostname 10.0.0.5\nport 22\naddressfamily any\nconnectionattempts 1\nproxyusefdpass no\n";
        assert!(plain_connection(plain));
        for extra in [
            "proxycommand nc %h %p",
            "proxyjump bastion",
            "bindaddress 10.0.0.9",
            "bindinterface eth1",
        ] {
            assert!(!plain_connection(&format!("{plain}{extra}\n")), "{extra}");
        }
        assert!(!plain_connection(
            &plain.replace("addressfamily any", "addressfamily inet6")
        ));
        assert!(!plain_connection(
            &plain.replace("connectionattempts 1", "connectionattempts 3")
        ));
        assert!(plain_connection(&format!("{plain}proxycommand none\n")));
    }

    #[test]
    fn config_files_that_never_say_how_to_reach_a_host_need_no_ssh_g() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("conf.d")).expect("conf.d");
        let main = format!(
            "Host *\n  SendEnv LANG\nInclude {}/conf.d/*.conf\n",
            d.display()
        );
        std::fs::write(d.join("main"), main).expect("main");
        std::fs::write(d.join("conf.d/a.conf"), "Host web-*\n  User ops\n").expect("a");
        std::fs::write(d.join("conf.d/b.txt"), "ProxyJump not-included\n").expect("b");
        assert!(file_is_plain(&d.join("main"), 0));
        std::fs::write(d.join("conf.d/c.conf"), "Host db\n  proxyjump=bastion\n").expect("c");
        assert!(
            !file_is_plain(&d.join("main"), 0),
            "an included file says ProxyJump"
        );
        std::fs::write(d.join("odd"), "Include ~/%d/x\n").expect("odd");
        assert!(
            !file_is_plain(&d.join("odd"), 0),
            "a token deckhand cannot follow"
        );
        assert!(
            file_is_plain(&d.join("missing"), 0),
            "a missing file says nothing"
        );
    }

    #[test]
    fn the_config_lines_quote_the_program_and_escape_ssh_tokens() {
        let lines = config_lines(
            Path::new("/opt/my tools/deck%hand"),
            Duration::from_secs(20),
            Path::new("/tmp/dh-0/nAb/connect.log"),
        );
        assert_eq!(
            lines,
            "ProxyCommand '/opt/my tools/deck%%hand' __ssh-connect %h %p 20 '/tmp/dh-0/nAb/connect.log'\nProxyUseFdpass yes\n"
        );
    }

    #[test]
    fn a_refused_connection_is_said_in_ssh_s_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("connect.log");
        let args: Vec<OsString> = ["127.0.0.1", &port.to_string(), "5"]
            .iter()
            .map(OsString::from)
            .chain([log.clone().into_os_string()])
            .collect();
        assert_eq!(helper_main(&args), 255);
        let said = std::fs::read_to_string(&log).expect("log");
        assert_eq!(
            said,
            format!("ssh: connect to host 127.0.0.1 port {port}: Connection refused\n")
        );
    }
}
