//! The long-lived shell deckhand keeps on a node: the POSIX `sh` program it runs there, and the
//! small framed protocol spoken over that shell's one SSH channel. This module owns the text
//! that goes over the wire in both directions (requests, records, the greeting) as pure
//! functions; it must not do any I/O itself: `ssh.rs` owns the channels, the pool and the clock.
//!
//! # Why a shell, and why this one
//! A step used to cost a channel of its own: sshd sets up a session, starts the login shell, which
//! starts a kill-safe wrapper (about 4.5 ms over loopback, and a ~40 ms stall through a bastion).
//! Now one shell per channel stays up and runs step after step. The node is only assumed to have
//! POSIX `sh`, coreutils (`mktemp`, `mkfifo`, `head`, `tr`, `sleep`, `rm`) and Linux's `/proc`.
//!
//! # What runs on the node
//! The channel's command is `exec sh -c '<PROGRAM>'` (the program holds no script and no
//! secret). All its processes stay in the process group sshd gave the session:
//! - the shell itself, which sets up a private directory of FIFOs and runs the rest (under
//!   `$TMPDIR` if the session sets it to an absolute path, else `$XDG_RUNTIME_DIR`, else
//!   `/dev/shm`, else `/tmp`, the first that is an absolute, writable directory:
//!   memory first, see docs/ssh.md; the files a stop needs are created only when one comes);
//! - two *servers*, a pipeline (`a | b`: a background job would have INT and QUIT ignored, and
//!   its steps with it), that take turns: the one holding the turn reads the console's requests
//!   from the channel's stdin; on a `run` it hands the turn to the other and runs the step
//!   itself, in the foreground, as a subshell that `eval`s the script (the script never reaches
//!   any process's argv, and errors read as they always did: `sh: 2: eval: …`). So a server
//!   always listens for `kill` and for the end of the channel (the console going away) while a
//!   step runs, and a step costs one `fork`, not an `exec`;
//! - three *copiers*, for the step's stdout, its stderr and a sentinel. A step writes into FIFOs
//!   opened for it alone; the copiers forward its lines to the channel as they come and, once
//!   every process has closed a FIFO, tell the server (through a mailbox FIFO) how many lines
//!   it carried. (A shell gets its next step only once all three have ended, so the mailbox
//!   never holds news of an earlier step.) The sentinel is a FIFO every step process inherits on fd 3 and never writes:
//!   it ends when everything the step started has ended (or closed what it inherited).
//!
//! The server then writes one record: the exit status, the number of stderr lines, and whether
//! the sentinel ended. One write, because a relay that delays small packets (Nagle's algorithm
//! on a jump host's forwarding socket) holds back a second write for ~40 ms; measured through
//! the test bastion, three writes at the end of a step stalled 55 % of steps and one none.
//!
//! A process a step leaves behind can hold its output open: the server then waits, and when the
//! console asks (`tick`, every 50 ms in the step's first second, then less often, see
//! `ssh.rs`), says the exit status early and the end as soon as the step's stdout and stderr are
//! closed. When they are closed and only the sentinel is held (an app started in the background
//! with its output sent elsewhere, as a restart does), the server says the exit status early at
//! once, unasked, and the console asks at once (and every 5 ms after). The three copiers report
//! the end of their FIFOs one by one, so "only the sentinel is held" may also mean its copier's
//! report is still on its way (usually microseconds behind, more on a busy node). The first
//! `tick` tells the two apart, once, by looking for a process with the sentinel on its fd 3
//! among the user's processes (`test -O` on `/proc/PID`, then `test -ef` on `/proc/PID/fd/3`;
//! about a millisecond for 150 processes here, where reading each process's `stat` to keep to
//! the shell's process group took 16 ms with dash's byte-at-a-time `read`): one found ends the
//! step without the sentinel; none found means the report is coming, and the server waits for
//! it, until 8 more ticks have come. A holder the look cannot see ends the step then (about
//! 40 ms later): one that moved the sentinel off fd 3, or runs as another user or non-dumpable.
//! (`test -ef` stats what the user's processes have on fd 3: a file on a hung network mount
//! there would hold this shell up; the console then closes it after its grace.) A shell whose
//! step left anything running is never given another
//! step (the console closes it), so its output cannot reach a later step, and no later step's
//! `kill 0` or stop can reach what the earlier one left. The shell's own processes ignore TERM,
//! INT, HUP and QUIT (the step gets them back), so a step's `trap 'kill 0' EXIT` stops only the
//! step.
//!
//! # Which processes belong to a step
//! A process group of its own per step would cost an `exec` (`setsid`/`timeout`) per step, more
//! than the whole step on these machines. Instead the step's first process (the subshell)
//! records its pid and the clock (no `exec`): its pid is the one entry of `/proc/self/task`
//! (a glob), the clock is `/proc/uptime` in hundredths of a second, the unit and the clock of a
//! process's start time in `/proc/PID/stat`. (Reading its own `stat` instead took 300 one-byte
//! `read`s in dash, half of an empty step's system calls: an empty step cost 1.05 to 1.35 ms
//! of CPU here that way, 0.77 to 0.89 ms this way.) Not every node's `/proc/uptime` is on that
//! clock: LXCFS (LXC, LXD and Proxmox containers) shows the container's own uptime there while
//! start times stay the host's, and a kernel whose `USER_HZ` is not 100 counts start times in
//! other units. So the shell checks once, as it starts, that `/proc/uptime` reads at or just
//! after its own start time (within 10 s); where it does not, each step reads its own `stat`
//! as before. The step's processes are the first one and those of the shell's process group
//! started since that clock reading (ties broken by pid); every process the step starts comes
//! after it. Any that carry another step's `DECKHAND_STEP` in their environment are left out.
//! Stopping a step is: SIGTERM to those, up to 2 s for them to go, SIGKILL to what is left, as
//! before. Like before, a process that left the group on purpose (`setsid`, a daemon) is not
//! touched. The clock is recorded rather than read when the step is stopped: a stop that
//! arrives just as the step's first process ends would otherwise find nothing to count from,
//! and a rule without it would take in the shell's own processes (the shell once stopped
//! itself that way, leaving its other server waiting forever for the stop to finish); a clock
//! on another time base would do the same, hence the check.
//!
//! # A shell killed outright
//! A shell whose first process was killed (by an operator, the OOM killer, a session's
//! processes killed one by one) can leave its servers and copiers behind, blocked on a FIFO or
//! waiting for a turn that never comes. The next shell to start on the node as the same user
//! finds its directory (its recorded pid no longer runs), stops what is left of the step the dead
//! shell was running (by the rule of a `kill` request, in the dead shell's process group: the
//! console's own stop of that step reads the same directory, and must not find it gone with the
//! step still running), kills the processes the dead shell recorded as its own (the copiers and
//! servers, each checked to still be in its process group) and removes the directory. Each
//! copier and server records itself as it starts (a copier from where `cd -P /proc/self` lands,
//! no `read` of its `stat`): a shell killed between starting a copier and writing down its pid
//! would otherwise leave that copier blocked on its FIFO for good, unknown to the next shell.
//! A copier then checks that its shell still runs, and ends if not: one that wrote itself down
//! after the next shell read the list found its shell already dead. What the dead shell's
//! earlier steps started is left alone. A shell whose console went away before it could greet it (its greeting finds the channel closed) stops its
//! copiers and removes its directory itself.
//!
//! # The protocol
//! Console → node, on the channel's stdin:
//! - `run ID NONCE LINES BYTES\n`, the script (`LINES` lines, `BYTES` bytes), then `.\n`; a
//!   request cut short is never run.
//! - `kill ID\n`: stop step `ID`; its end record follows once that is done.
//! - `tick ID\n`: if step `ID` exited but its output is still held open, say its status now; if
//!   its output is closed and a process holds the sentinel (or 8 ticks came since), end it
//!   (passed on to the server that runs it only once its subshell has ended; one that arrives
//!   later is ignored by its id).
//! - an empty line: nothing (the console's answer to output, see `ssh.rs`).
//! - end of file: the console is gone (or closing): the running step, if any, is stopped and
//!   the shell exits. A step that already ended is left alone with whatever it started.
//!
//! Node → console: first `@dh-shell 1 PGID DIR PIDS…` (or `@dh-fail REASON`) on stdout. Then per
//! step, the step's own lines on stdout and stderr as they come, `@dh:NONCE rc STATUS` on stdout
//! when said early, and `@dh:NONCE end STATUS STDERR_LINES ALL_ENDED` on stdout last. `NONCE` is
//! random per step and never reaches the step, so no output can forge a record.

use std::fmt::Write as _;

use crate::util::sh_quote;

/// The protocol version in the greeting; bump it when the program and the parser part ways.
pub(crate) const VERSION: &str = "1";

/// Scripts longer than this (in bytes) are read on the node with `head -c` (one `exec`) instead
/// of line by line with the shell's `read` (which reads one byte per system call).
const HEAD_THRESHOLD: usize = 2048;

/// The functions that find and signal one step's processes (see the module doc). Shared by the
/// shell program and by [`stop_command`], which runs them on a fresh channel after a shell died.
const KILL_FUNCTIONS: &str = r#"dh_signal() {
  k_any=1
  for k_d in /proc/[0-9]*; do
    IFS= read -r k_st < "$k_d/stat" 2>/dev/null || continue
    k_st=${k_st##*) }
    set -f; set -- $k_st; set +f
    [ "$3" = "$dh_pg" ] && [ "$1" != Z ] || continue
    k_pid=${k_d#/proc/}
    if [ "$k_pid" != "$k_p" ] && { [ "${20}" -lt "$k_t" ] || { [ "${20}" -eq "$k_t" ] && [ "$k_pid" -lt "$k_p" ]; }; }; then continue; fi
    case "
$(tr '\0' '\n' < "$k_d/environ" 2>/dev/null)
" in *"
DECKHAND_STEP=$k_id
"*) ;; *"
DECKHAND_STEP="*) continue ;; esac
    k_any=0
    [ -z "$k_sig" ] || kill -"$k_sig" "$k_pid" 2>/dev/null
  done
  return $k_any
}
dh_kill() {
  k_id=$1 k_p=$2 k_t=$3
  case $k_p:$k_t in *[!0-9:]*|:*|*:) return 0 ;; esac
  k_sig=TERM; dh_signal
  k_sig= k_n=0
  while [ "$k_n" -lt 20 ] && dh_signal; do sleep 0.1 2>/dev/null || sleep 1; k_n=$((k_n+1)); done
  k_sig=KILL; dh_signal
  return 0
}
"#;

/// Everything before the kill functions: the greeting's failure path, the private directory with
/// its FIFOs (and the removal of those that shells killed outright left behind), and the copier.
const PROGRAM_HEAD: &str = r#"dh_fail() { printf '@dh-fail %s\n' "$*"; exit 1; }
IFS= read -r dh_st < /proc/$$/stat 2>/dev/null || dh_fail "cannot read /proc/$$/stat: deckhand needs a Linux node with /proc"
dh_st=${dh_st##*) }
set -f; set -- $dh_st; set +f
dh_pg=$3
dh_x=${20}
set --
dh_u=
if IFS=' ' read -r dh_w dh_y < /proc/uptime 2>/dev/null; then
  dh_w=${dh_w%.*}${dh_w#*.}
  case $dh_w:$dh_x in
    *[!0-9:]*|:*|*:) ;;
    *) [ "$dh_w" -ge "$dh_x" ] && [ "$dh_w" -le $((dh_x + 1000)) ] && dh_u=1 ;;
  esac
fi
case ${TMPDIR:-} in
  /*) dh_r=$TMPDIR ;;
  *)
    for dh_r in "${XDG_RUNTIME_DIR:-}" /dev/shm /tmp; do
      case $dh_r in /*) [ -d "$dh_r" ] && [ -w "$dh_r" ] && break ;; esac
    done
    ;;
esac
dh_d=$(mktemp -d "$dh_r/deckhand.XXXXXXXX") || dh_fail "cannot create a private directory under $dh_r (mktemp -d failed); check that it exists and is writable, or set TMPDIR"
mkfifo -m 600 "$dh_d/o" "$dh_d/e" "$dh_d/s" "$dh_d/a" "$dh_d/n" || { rm -rf "$dh_d"; dh_fail "cannot create FIFOs in $dh_d (mkfifo failed)"; }
: > "$dh_d/cur"
exec 9<&0 </dev/null 6<>"$dh_d/n"
trap '' TERM INT HUP QUIT
dh_num() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }
dh_copy() {
  exec 4<&- 5>&- 6<&- 9<&-
  if cd -P /proc/self 2>/dev/null; then printf '%s\n' "${PWD#/proc/}" >> "$dh_d/own"; fi
  cd /
  kill -0 "$$" 2>/dev/null || exit 0
  while :; do
    exec 0<"$1" || exit 1
    dh_k=0
    while IFS= read -r dh_l; do printf '%s\n' "$dh_l"; dh_k=$((dh_k+1)); done
    [ -z "$dh_l" ] || { printf '%s\n' "$dh_l"; dh_k=$((dh_k+1)); }
    exec 0<&-
    printf '%s %s\n' "$2" "$dh_k" > "$dh_d/n"
  done
}
printf '%s %s\n' "$$" "$dh_pg" > "$dh_d/pid"
"#;

/// What a new shell does first: the directories of shells killed outright, each with what is
/// left of the step it ran stopped (by the rule of a `kill` request, in the dead shell's process
/// group) before its own servers and copiers are killed and the directory removed. Needs the
/// kill functions.
const REAP: &str = r#"for dh_x in "$dh_r"/deckhand.*/pid; do
  [ -O "$dh_x" ] && IFS=' ' read -r dh_y dh_z < "$dh_x" && dh_num "$dh_y" || continue
  ! kill -0 "$dh_y" 2>/dev/null || continue
  if dh_num "$dh_z" && [ "$dh_z" != "$dh_pg" ] && [ -f "${dh_x%/pid}/own" ]; then
    k_id= k_p= k_t=
    IFS=' ' read -r k_id k_p k_t 2>/dev/null < "${dh_x%/pid}/cur"
    if [ -n "$k_id" ]; then
      dh_w=$dh_pg; dh_pg=$dh_z
      dh_kill "$k_id" "$k_p" "$k_t"
      dh_pg=$dh_w
    fi
    while IFS= read -r dh_w; do
      dh_num "$dh_w" || continue
      IFS= read -r dh_st 2>/dev/null < "/proc/$dh_w/stat" || continue
      dh_st=${dh_st##*) }
      set -f; set -- $dh_st; set +f
      [ "$3" != "$dh_z" ] || kill -KILL "$dh_w" 2>/dev/null
    done < "${dh_x%/pid}/own"
    set --
  fi
  rm -rf "${dh_x%/pid}"
done
"#;

/// The servers and the start: see the module doc for what each part does.
const PROGRAM_TAIL: &str = r#"dh_stop() {
  printf '%s\n' "$1" > "$dh_d/cancel"
  printf '1\n' > "$dh_d/killing"
  k_n=0
  while :; do
    IFS=' ' read -r k_id k_p k_t < "$dh_d/cur"
    [ "$k_id" = "$1" ] || break
    if dh_num "$k_p" && dh_num "$k_t"; then dh_kill "$k_id" "$k_p" "$k_t"; break; fi
    [ "$k_n" -lt 40 ] || break
    DECKHAND_STEP=- sleep 0.05 2>/dev/null || DECKHAND_STEP=- sleep 1
    k_n=$((k_n+1))
  done
  : > "$dh_d/killing"
}
dh_run() {
  printf '%s' "$dh_i" > "$dh_d/cur"
  printf 'go\n'
  exec 7>"$dh_d/o" 8>"$dh_d/e" 3>"$dh_d/s"
  dh_x=
  [ ! -s "$dh_d/cancel" ] || IFS= read -r dh_x < "$dh_d/cancel"
  if [ "$dh_x" = "$dh_i" ]; then
    dh_rc=143
    : > "$dh_d/cur"
  else
    (
      trap - TERM INT HUP QUIT
      if [ -n "$dh_u" ]; then
        set -- /proc/self/task/*
        IFS=' ' read -r dh_st dh_x < /proc/uptime
        printf ' %s %s%s\n' "${1##*/}" "${dh_st%.*}" "${dh_st#*.}" >> "$dh_d/cur"
      else
        IFS= read -r dh_st < /proc/self/stat
        dh_x=${dh_st%% *}
        dh_st=${dh_st##*) }
        set -f; set -- $dh_st; set +f
        printf ' %s %s\n' "$dh_x" "${20}" >> "$dh_d/cur"
      fi
      set --
      DECKHAND_STEP=$dh_i; export DECKHAND_STEP
      unset -f dh_fail dh_num dh_copy dh_signal dh_kill dh_stop dh_run dh_held dh_quit dh_serve
      unset -v dh_st dh_pg dh_r dh_u dh_d dh_n dh_l dh_x dh_y dh_z dh_t dh_v dh_c dh_b dh_w dh_co dh_ce dh_cs dh_rc dh_o dh_e dh_k dh_q k_any k_d k_st k_pid k_sig k_id k_t k_p k_n
      eval "unset -v dh_i dh_s;$dh_s"
    ) </dev/null >&7 2>&8 4<&- 5>&- 6<&- 7>&- 8>&- 9>&-
    dh_rc=$?
  fi
  dh_x=0
  while [ -s "$dh_d/killing" ] && [ "$dh_x" -lt 200 ] && kill -0 "$$" 2>/dev/null; do
    DECKHAND_STEP=- sleep 0.05 2>/dev/null || DECKHAND_STEP=- sleep 1
    dh_x=$((dh_x+1))
  done
  kill -0 "$$" 2>/dev/null || return 1
  : > "$dh_d/cur"
  exec 7>&- 8<&0 0<&6 3>&-
  dh_o= dh_e= dh_z= dh_y= dh_t= dh_q=0
  while [ -z "$dh_o" ] || [ -z "$dh_e" ] || [ -z "$dh_z" ]; do
    if [ -n "$dh_o" ] && [ -n "$dh_e" ]; then
      [ -n "$dh_t" ] || printf '@dh:%s rc %s\n' "$dh_n" "$dh_rc" >&5
      dh_t=1
      if [ -n "$dh_y" ]; then
        dh_y=
        [ "$dh_q" -gt 0 ] || ! dh_held || break
        dh_q=$((dh_q+1))
        [ "$dh_q" -le 8 ] || break
      fi
    fi
    IFS=' ' read -r dh_w dh_x || { exec 0<&8 8<&-; return 1; }
    case $dh_w:$dh_x in
      o:*) dh_o=1 ;;
      e:*) dh_e=$dh_x ;;
      s:*) dh_z=1 ;;
      "tick:$dh_i")
        [ -n "$dh_t" ] || printf '@dh:%s rc %s\n' "$dh_n" "$dh_rc" >&5
        dh_t=1 dh_y=1
        ;;
      quit:*) exec 0<&8 8<&-; return 1 ;;
    esac
  done
  exec 0<&8 8<&-
  printf '@dh:%s end %s %s %s\n' "$dh_n" "$dh_rc" "$dh_e" "${dh_z:-0}" >&5
}
dh_held() {
  for dh_w in /proc/[0-9]*; do
    [ -O "$dh_w" ] && [ "$dh_w/fd/3" -ef "$dh_d/s" ] && return 0
  done
  return 1
}
dh_quit() {
  kill -KILL "$dh_co" "$dh_ce" "$dh_cs" 2>/dev/null
  rm -rf "$dh_d"
}
dh_serve() {
  IFS= read -r dh_w < /proc/self/stat && printf '%s\n' "${dh_w%% *}" >> "$dh_d/own"
  if [ "$1" = a ]; then
    exec 0<&9 9<&- 4<"$dh_d/a"
  else
    exec 4<&0 0<&9 9<&- 1>"$dh_d/a"
    IFS= read -r dh_w <&4 && [ "$dh_w" = go ] || return 0
  fi
  while :; do
    if ! IFS=' ' read -r dh_v dh_i dh_n dh_c dh_b; then
      IFS=' ' read -r dh_x dh_w < "$dh_d/cur"
      [ -z "$dh_x" ] || dh_stop "$dh_x"
      trap '' PIPE
      printf 'quit\n'
      printf 'quit\n' >&6
      while IFS= read -r dh_w <&4; do :; done
      dh_quit
      return 0
    fi
    case $dh_v in
      run)
        dh_num "$dh_i" && dh_num "$dh_c" && dh_num "$dh_b" || continue
        case $dh_n in ''|*[!0-9a-f]*) continue ;; esac
        if [ "$dh_b" -gt HEAD_THRESHOLD ]; then
          dh_s=$(head -c "$dh_b"; printf .) || return 0
          dh_s=${dh_s%.}
        else
          dh_s=
          while [ "$dh_c" -gt 0 ] && IFS= read -r dh_l; do dh_s="$dh_s$dh_l
"; dh_c=$((dh_c-1)); done
        fi
        IFS= read -r dh_l && [ "$dh_l" = . ] || { printf 'quit\n'; return 0; }
        dh_run || return 0
        IFS= read -r dh_w <&4 && [ "$dh_w" = go ] || return 0
        ;;
      kill) dh_num "$dh_i" && dh_stop "$dh_i" ;;
      tick)
        IFS=' ' read -r dh_x dh_w < "$dh_d/cur"
        [ "$dh_x" = "$dh_i" ] || printf 'tick %s\n' "$dh_i" >&6
        ;;
    esac
  done
}
dh_copy "$dh_d/o" o & dh_co=$!
dh_copy "$dh_d/e" e >&2 & dh_ce=$!
dh_copy "$dh_d/s" s >/dev/null & dh_cs=$!
exec 5>&1 2>/dev/null
trap '' PIPE
printf '@dh-shell VERSION %s %s %s %s %s %s\n' "$dh_pg" "$dh_d" "$$" "$dh_co" "$dh_ce" "$dh_cs" || { dh_quit; exit 1; }
trap - PIPE
{ dh_serve a; } | { dh_serve b; }
dh_quit
"#;

/// The shell program, as run by `sh -c` on the node.
pub(crate) fn program() -> String {
    let tail = PROGRAM_TAIL
        .replace("HEAD_THRESHOLD", &HEAD_THRESHOLD.to_string())
        .replace("VERSION", VERSION);
    format!("{PROGRAM_HEAD}{KILL_FUNCTIONS}{REAP}{tail}")
}

/// The command for the channel that becomes a shell.
pub(crate) fn shell_command() -> String {
    format!("exec sh -c {}", sh_quote(&program()))
}

/// The command that stops what is left of step `id` of a shell that died (run on a channel of
/// its own): the same rule as a `kill` request, from the step's first process as the dead shell
/// recorded it in its directory.
pub(crate) fn stop_command(hello: &Hello, id: u64) -> String {
    let prog = format!(
        "{KILL_FUNCTIONS}dh_pg=$1\n\
         IFS=' ' read -r k_id k_p k_t < \"$2/cur\" 2>/dev/null\n\
         [ \"$k_id\" = \"$3\" ] || exit 0\n\
         dh_kill \"$k_id\" \"$k_p\" \"$k_t\"\n"
    );
    format!(
        "exec sh -c {} deckhand-stop {} {} {}",
        sh_quote(&prog),
        hello.pgid,
        sh_quote(&hello.dir),
        id
    )
}

/// What a shell says when it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The process group every process of the shell and of its steps starts in.
    pub pgid: i32,
    /// The shell's private directory on the node (FIFOs and the running step's reference).
    pub dir: String,
    /// The shell's own processes: the shell itself, the two copiers and the sentinel's reader (the
    /// two servers are its pipeline).
    pub pids: Vec<i32>,
}

/// How a shell's first line reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Greeting {
    Ready(Hello),
    /// The program stopped before it was ready, saying why.
    Failed(String),
    /// Not the shell's line (a login script printed something first): skip it.
    Other,
}

/// Read a line the shell wrote on stdout before its first step.
pub(crate) fn parse_greeting(line: &[u8]) -> Greeting {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if let Some(reason) = text.strip_prefix("@dh-fail ") {
        return Greeting::Failed(super::sanitize(reason));
    }
    let Some(rest) = text.strip_prefix("@dh-shell ") else {
        return Greeting::Other;
    };
    let mut words = rest.split(' ');
    if words.next() != Some(VERSION) {
        return Greeting::Failed(format!(
            "the shell answered with another protocol ({})",
            super::sanitize(rest)
        ));
    }
    let pgid = words.next().and_then(|w| w.parse::<i32>().ok());
    let dir = words.next().map(str::to_string);
    let pids: Option<Vec<i32>> = words.map(|w| w.parse::<i32>().ok()).collect();
    match (pgid, dir, pids) {
        (Some(pgid), Some(dir), Some(pids))
            if pgid > 1
                && pids.len() == 4
                && dir.starts_with('/')
                && !dir.contains(|c: char| c.is_control()) =>
        {
            Greeting::Ready(Hello { pgid, dir, pids })
        }
        _ => Greeting::Failed(format!(
            "the shell's greeting is malformed ({})",
            super::sanitize(rest)
        )),
    }
}

/// A fresh per-step nonce: 16 hex digits from the system's random source.
pub(crate) fn new_nonce() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        use std::io::Read;
        let filled = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut buf))
            .is_ok();
        if !filled {
            // Last resort: the clock and the address space; still never known to the step.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let a = &buf as *const _ as u64;
            buf = (t ^ a.rotate_left(29) ^ u64::from(std::process::id())).to_le_bytes();
        }
    }
    buf.iter().fold(String::with_capacity(16), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The bytes of a `run` request for `script`. A script that holds a NUL byte cannot reach a
/// shell (nor could it reach `sh -c` before): that is refused here.
pub(crate) fn run_request(id: u64, nonce: &str, script: &str) -> Result<Vec<u8>, String> {
    if script.contains('\0') {
        return Err("the script holds a NUL byte, which no shell can run".into());
    }
    let mut body = script.as_bytes().to_vec();
    if body.last().is_some_and(|b| *b != b'\n') {
        body.push(b'\n');
    }
    let lines = body.iter().filter(|b| **b == b'\n').count();
    let mut out = format!("run {id} {nonce} {lines} {}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(b".\n");
    Ok(out)
}

/// The bytes of a `kill` request.
pub(crate) fn kill_request(id: u64) -> Vec<u8> {
    format!("kill {id}\n").into_bytes()
}

/// The bytes of a `tick` request: "if step `id` has exited but something still holds its output
/// open, say its exit status now".
pub(crate) fn tick_request(id: u64) -> Vec<u8> {
    format!("tick {id}\n").into_bytes()
}

/// One line of a shell's stdout during a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// A line of the step's output.
    Data(&'a [u8]),
    /// The step's shell exited with this status, said early because a process it left still
    /// holds its output open. The record may have landed inside a line of that output: `before`
    /// is its beginning, and the next line of data its end.
    Exited { before: &'a [u8], code: i32 },
    /// The step is over: its status, how many lines it wrote on stderr (which travel apart
    /// and may arrive after this), and whether everything it started has ended (else the shell
    /// must not run another step: its process group still holds this one's leftovers).
    End {
        before: &'a [u8],
        code: i32,
        stderr_lines: u64,
        all_ended: bool,
    },
}

/// Read one line (without its `\n`) of the stdout of a step whose nonce is `nonce`.
pub(crate) fn parse_stdout<'a>(line: &'a [u8], nonce: &str) -> Record<'a> {
    let tag = format!("@dh:{nonce} ");
    let tag = tag.as_bytes();
    let Some(at) = line.windows(tag.len()).rposition(|w| w == tag) else {
        return Record::Data(line);
    };
    let before = &line[..at];
    let rest = std::str::from_utf8(&line[at + tag.len()..]).unwrap_or("");
    let w: Vec<&str> = rest.split(' ').collect();
    match (
        w.first().copied(),
        w.get(1).copied(),
        w.get(2).copied(),
        w.get(3).copied(),
        w.len(),
    ) {
        (Some("rc"), Some(code), None, None, 2) => match code.parse() {
            Ok(code) => Record::Exited { before, code },
            Err(_) => Record::Data(line),
        },
        (Some("end"), Some(code), Some(lines), Some(ended), 4) => {
            match (code.parse(), lines.parse(), ended) {
                (Ok(code), Ok(stderr_lines), "0" | "1") => Record::End {
                    before,
                    code,
                    stderr_lines,
                    all_ended: ended == "1",
                },
                _ => Record::Data(line),
            }
        }
        _ => Record::Data(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn a_run_request_carries_the_script_whole_with_its_size_and_an_end_line() {
        let r = run_request(7, "00ff", "echo 'a b'\nexit 3").expect("plain text");
        assert_eq!(r, b"run 7 00ff 2 18\necho 'a b'\nexit 3\n.\n".to_vec());
        let r = run_request(8, "ab", "").expect("empty");
        assert_eq!(r, b"run 8 ab 0 0\n.\n".to_vec());
        let r = run_request(9, "ab", "x\n\n").expect("blank lines");
        assert_eq!(r, b"run 9 ab 2 3\nx\n\n.\n".to_vec());
        assert!(run_request(1, "ab", "a\0b").is_err());
        assert_eq!(kill_request(12), b"kill 12\n".to_vec());
    }

    #[test]
    fn records_are_told_from_output_by_the_nonce() {
        let n = "0123456789abcdef";
        assert_eq!(parse_stdout(b"hello", n), Record::Data(b"hello"));
        assert_eq!(parse_stdout(b"", n), Record::Data(b""));
        assert_eq!(
            parse_stdout(b"@dh:0123456789abcdef end 3 2 1", n),
            Record::End {
                before: b"",
                code: 3,
                stderr_lines: 2,
                all_ended: true
            }
        );
        assert_eq!(
            parse_stdout(b"@dh:0123456789abcdef end 0 0 0", n),
            Record::End {
                before: b"",
                code: 0,
                stderr_lines: 0,
                all_ended: false
            }
        );
        assert_eq!(
            parse_stdout(b"@dh:0123456789abcdef rc 0", n),
            Record::Exited {
                before: b"",
                code: 0
            }
        );
        // Said early, in the middle of a line a leftover process was writing.
        assert_eq!(
            parse_stdout(b"half a li@dh:0123456789abcdef rc 1", n),
            Record::Exited {
                before: b"half a li",
                code: 1
            }
        );
        // Another step's nonce, a guess, or a malformed record is output like any other line.
        for line in [
            &b"@dh:fedcba9876543210 end 0 0 1"[..],
            b"@dh:0123456789abcdef end x 0 1",
            b"@dh:0123456789abcdef end 0 0",
            b"@dh:0123456789abcdef end 0 0 2",
            b"@dh:0123456789abcdef end 0 0 1 1",
            b"@dh:0123456789abcdef rc 0 0",
            b"@dh:0123456789abcdef flush",
        ] {
            assert_eq!(parse_stdout(line, n), Record::Data(line));
        }
        assert_eq!(tick_request(4), b"tick 4\n".to_vec());
    }

    #[test]
    fn greetings_are_read_strictly() {
        assert_eq!(
            parse_greeting(b"@dh-shell 1 4242 /tmp/deckhand.AbC 4242 4250 4248 4249"),
            Greeting::Ready(Hello {
                pgid: 4242,
                dir: "/tmp/deckhand.AbC".into(),
                pids: vec![4242, 4250, 4248, 4249],
            })
        );
        assert!(matches!(
            parse_greeting(b"@dh-fail cannot read /proc/1/stat"),
            Greeting::Failed(r) if r.contains("/proc")
        ));
        assert_eq!(parse_greeting(b"Welcome to node 7"), Greeting::Other);
        assert!(matches!(
            parse_greeting(b"@dh-shell 2 1 /x 1 2 3 4"),
            Greeting::Failed(_)
        ));
        assert!(matches!(
            parse_greeting(b"@dh-shell 1 1 /x 1 2 3 4"),
            Greeting::Failed(_)
        ));
        assert!(matches!(
            parse_greeting(b"@dh-shell 1 12 relative 1 2 3 4"),
            Greeting::Failed(_)
        ));
    }

    #[test]
    fn nonces_are_sixteen_hex_digits_and_differ() {
        let a = new_nonce();
        let b = new_nonce();
        assert_eq!(a.len(), 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    /// The program itself, run here with this machine's `sh` in a session of its own (as sshd
    /// starts it), spoken to through pipes: two steps, their records in order.
    #[test]
    fn the_program_runs_steps_and_frames_their_output() {
        use std::os::unix::process::CommandExt;
        let mut cmd = as_sshd_starts(program());
        cmd.stderr(Stdio::piped());
        // Every signal at its default, as sshd starts a session: a shell cannot undo a signal
        // ignored when it started, and a test run from a background job has INT and QUIT
        // ignored.
        // SAFETY: only async-signal-safe calls (signal(2)) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGTERM] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("setsid sh");
        let mut stdin = child.stdin.take().expect("stdin");
        // Empty lines (what the console sends through a jump host while a shell starts, and
        // after output) are no requests: the steps below run as if they never came.
        stdin.write_all(b"\n\n\n").expect("empty lines");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = Vec::new();
        out.read_until(b'\n', &mut line).expect("greeting");
        let Greeting::Ready(hello) = parse_greeting(line.strip_suffix(b"\n").unwrap_or(&line))
        else {
            panic!("no greeting: {}", String::from_utf8_lossy(&line));
        };
        assert!(std::path::Path::new(&hello.dir).is_dir());

        let mut step = |id: u64, script: &str| -> (Vec<String>, Vec<String>, i32) {
            let nonce = new_nonce();
            stdin
                .write_all(&run_request(id, &nonce, script).expect("request"))
                .expect("send");
            let (mut o, mut e) = (Vec::new(), Vec::new());
            let mut early = None;
            let (rc, lines) = loop {
                let mut l = Vec::new();
                out.read_until(b'\n', &mut l).expect("stdout");
                assert!(!l.is_empty(), "the shell closed its stdout");
                match parse_stdout(l.strip_suffix(b"\n").unwrap_or(&l), &nonce) {
                    Record::Data(d) => o.push(String::from_utf8_lossy(d).into_owned()),
                    Record::End {
                        before,
                        code,
                        stderr_lines,
                        ..
                    } => {
                        assert!(before.is_empty());
                        assert!(early.is_none_or(|c| c == code), "{early:?} then {code}");
                        break (code, stderr_lines);
                    }
                    // Said when the step's output closed before its end marker was reported.
                    Record::Exited { before, code } => {
                        assert!(before.is_empty() && early.is_none());
                        early = Some(code);
                    }
                }
            };
            for _ in 0..lines {
                let mut l = Vec::new();
                err.read_until(b'\n', &mut l).expect("stderr");
                e.push(String::from_utf8_lossy(l.strip_suffix(b"\n").unwrap_or(&l)).into_owned());
            }
            (o, e, rc)
        };
        let (o, e, rc) = step(1, "echo one; echo warn >&2; printf 'last'; exit 3");
        assert_eq!(o, vec!["one", "last"]);
        assert_eq!(e, vec!["warn"]);
        assert_eq!(rc, 3);
        // The step sees no bookkeeping of the shell, a closed stdin, its own id in the
        // environment, and no positional parameters.
        let (o, _, rc) = step(
            2,
            "cat; set | grep -c '^dh_' || true; echo \"[$1][$DECKHAND_STEP]\"; undefined_cmd_x",
        );
        assert_eq!(o, vec!["0", "[][2]"]);
        assert_eq!(rc, 127);
        // An error from the shell reads as it always did.
        let (_, e, _) = step(3, "echo x\nnot_a_command_y");
        assert_eq!(e, vec!["sh: 2: eval: not_a_command_y: not found"]);
        // Both servers run steps in turn; under either, a step's signals are as under `sh -c`
        // (nothing ignored: an `&` would have ignored INT and QUIT).
        for id in [4, 5] {
            let (o, _, _) = step(id, "grep SigIgn /proc/self/status");
            let mask = o
                .first()
                .and_then(|l| l.strip_prefix("SigIgn:\t"))
                .and_then(|m| u64::from_str_radix(m, 16).ok())
                .unwrap_or_else(|| panic!("step {id}: {o:?}"));
            // HUP, INT, QUIT and TERM (bits 0, 1, 2 and 14).
            assert_eq!(mask & 0x4007, 0, "step {id}: {o:?}");
        }
        let started = Instant::now();
        drop(stdin);
        let status = child.wait().expect("exit");
        assert!(status.success(), "{status}");
        assert!(started.elapsed() < Duration::from_secs(5));
        for _ in 0..50 {
            if !std::path::Path::new(&hello.dir).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !std::path::Path::new(&hello.dir).exists(),
            "the shell removes its directory when it ends"
        );
        // A shell killed outright cannot; the next one to start removes what it left.
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let stale = tempfile::Builder::new()
            .prefix("deckhand.")
            .tempdir_in(tmp.path())
            .expect("a directory like a shell's")
            .keep();
        std::fs::write(stale.join("pid"), "2147483646\n").expect("pid");
        let (mut next, _out, _) = started_shell(tmp.path());
        drop(next.stdin.take());
        let _ = next.wait();
        assert!(!stale.exists(), "{} is left", stale.display());
    }

    /// Where a shell keeps its directory: `$TMPDIR` when the session sets it, else the user's
    /// runtime directory, else `/dev/shm` (memory: FIFOs need no disk, and a full disk does not
    /// stop the shell), else `/tmp`.
    #[test]
    fn a_shell_keeps_its_directory_in_memory_unless_tmpdir_says_otherwise() {
        let dir_of = |env: &[(&str, Option<&std::path::Path>)]| -> String {
            let mut cmd = as_sshd_starts(program());
            for (k, v) in env {
                match v {
                    Some(v) => cmd.env(k, v),
                    None => cmd.env_remove(k),
                };
            }
            let mut child = cmd.spawn().expect("setsid sh");
            let hello = greeting(&mut BufReader::new(child.stdout.take().expect("stdout")));
            drop(child.stdin.take());
            let _ = child.wait();
            hello
                .unwrap_or_else(|line| panic!("no greeting: {line}"))
                .dir
        };
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let run = tempfile::tempdir().expect("a runtime directory");
        let parent = |d: &str| std::path::Path::new(d).parent().map(|p| p.to_path_buf());
        let both = dir_of(&[
            ("TMPDIR", Some(tmp.path())),
            ("XDG_RUNTIME_DIR", Some(run.path())),
        ]);
        assert_eq!(parent(&both).as_deref(), Some(tmp.path()), "{both}");
        let runtime = dir_of(&[("TMPDIR", None), ("XDG_RUNTIME_DIR", Some(run.path()))]);
        assert_eq!(parent(&runtime).as_deref(), Some(run.path()), "{runtime}");
        let shm = std::path::Path::new("/dev/shm");
        let neither = dir_of(&[("TMPDIR", None), ("XDG_RUNTIME_DIR", None)]);
        assert!(
            shm.is_dir(),
            "this test needs /dev/shm (a tmpfs every Linux has)"
        );
        assert_eq!(parent(&neither).as_deref(), Some(shm), "{neither}");
        // A relative TMPDIR (or runtime directory) is passed over: the copiers work from `/`.
        let relative = dir_of(&[
            ("TMPDIR", Some(std::path::Path::new("tmp"))),
            ("XDG_RUNTIME_DIR", Some(run.path())),
        ]);
        assert_eq!(parent(&relative).as_deref(), Some(run.path()), "{relative}");
        // A runtime directory that does not exist is passed over.
        let gone = run.path().join("gone");
        let fallback = dir_of(&[("TMPDIR", None), ("XDG_RUNTIME_DIR", Some(&gone))]);
        assert_eq!(parent(&fallback).as_deref(), Some(shm), "{fallback}");
    }

    /// `sh -c PROGRAM` in a session of its own, as sshd starts it, spoken to through pipes
    /// (stderr dropped).
    fn as_sshd_starts(prog: String) -> Command {
        let mut cmd = Command::new("setsid");
        cmd.args(["sh", "-c"])
            .arg(prog)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    /// The program started as sshd would start it (a session of its own), with `tmp` as its
    /// TMPDIR, once it said it is ready.
    fn started_shell(
        tmp: &std::path::Path,
    ) -> (
        std::process::Child,
        BufReader<std::process::ChildStdout>,
        Hello,
    ) {
        let mut child = as_sshd_starts(program())
            .env("TMPDIR", tmp)
            .spawn()
            .expect("setsid sh");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let hello = greeting(&mut out).unwrap_or_else(|line| panic!("no greeting: {line}"));
        (child, out, hello)
    }

    /// The shell's first line, read as its greeting; Err: the line, if it was not one.
    fn greeting(out: &mut BufReader<std::process::ChildStdout>) -> Result<Hello, String> {
        let mut line = Vec::new();
        out.read_until(b'\n', &mut line).expect("greeting");
        match parse_greeting(line.strip_suffix(b"\n").unwrap_or(&line)) {
            Greeting::Ready(hello) => Ok(hello),
            _ => Err(String::from_utf8_lossy(&line).into_owned()),
        }
    }

    /// The fields of `/proc/PID/stat` after the command name: proc(5)'s field `n` is at
    /// `n - 3`.
    fn stat(pid: i32) -> Option<Vec<String>> {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(
            st.rsplit_once(") ")?
                .1
                .split(' ')
                .map(str::to_string)
                .collect(),
        )
    }

    /// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`, a number.
    fn stat_field(pid: i32, n: usize) -> Option<u64> {
        stat(pid)?.get(n - 3)?.parse().ok()
    }

    /// Whether a process runs (a zombie waiting for its parent to read its status does not).
    fn runs(pid: i32) -> bool {
        stat(pid).is_some_and(|f| f[0] != "Z")
    }

    /// A stop that arrives as the step's first process ends (the console's timeout or its
    /// going away, at the wrong moment) stops what the step started and nothing of the shell's.
    #[test]
    fn a_stop_after_the_step_s_first_process_ended_spares_the_shell() {
        let script = format!(
            "{KILL_FUNCTIONS}\
             sleep 30 & own=$!\n\
             first=$(IFS= read -r st < /proc/self/stat; p=${{st%% *}}; st=${{st##*) }}; \
                     set -f; set -- $st; printf '%s %s' \"$p\" \"${{20}}\")\n\
             DECKHAND_STEP=7 sleep 30 & left=$!\n\
             dh_pg=$$\n\
             dh_kill 7 $first\n\
             kill -0 $own 2>/dev/null && echo shell-kept\n\
             sleep 0.2; [ -d /proc/$left ] && [ \"$(cut -d' ' -f3 /proc/$left/stat)\" != Z ] \
                 && echo step-kept || echo step-stopped\n\
             kill $own $left 2>/dev/null\n"
        );
        let out = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .expect("setsid sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["shell-kept", "step-stopped"],
            "{text} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A shell whose first process was killed leaves its servers and copiers blocked; the next
    /// shell kills them and removes the directory, and leaves alone what a step started.
    #[test]
    fn a_shell_killed_outright_leaves_nothing_of_its_own_behind() {
        // A directory of its own: the next shell reaps every dead shell's directory it finds.
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let start = || started_shell(tmp.path());
        let (mut dead, mut out, hello) = start();
        let mut stdin = dead.stdin.take().expect("stdin");
        let nonce = new_nonce();
        let step = "sleep 30 </dev/null >/dev/null 2>&1 3>&- & echo $!";
        stdin
            .write_all(&run_request(1, &nonce, step).expect("request"))
            .expect("send");
        let mut left = None;
        loop {
            let mut l = Vec::new();
            out.read_until(b'\n', &mut l).expect("stdout");
            assert!(!l.is_empty(), "the shell closed its stdout");
            match parse_stdout(l.strip_suffix(b"\n").unwrap_or(&l), &nonce) {
                Record::Data(d) => left = String::from_utf8_lossy(d).trim().parse::<i32>().ok(),
                Record::End { .. } => break,
                Record::Exited { .. } => {}
            }
        }
        let left = left.expect("the step's pid");
        let own: Vec<i32> = std::fs::read_to_string(format!("{}/own", hello.dir))
            .expect("the shell's own processes")
            .lines()
            .map(|l| l.parse().expect("a pid"))
            .collect();
        assert_eq!(own.len(), 5, "three copiers and two servers: {own:?}");
        assert!(own.iter().all(|p| runs(*p)));
        // Killed outright: its servers and copiers stay, blocked.
        unsafe { libc::kill(hello.pids[0], libc::SIGKILL) };
        let _ = dead.wait();
        std::thread::sleep(Duration::from_millis(200));
        assert!(own.iter().all(|p| runs(*p)), "left behind: {own:?}");

        let (mut next, _out, _) = start();
        let gone = own.iter().all(|p| !runs(*p));
        let step_kept = runs(left);
        unsafe { libc::kill(left, libc::SIGKILL) };
        for p in &own {
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        drop(stdin);
        drop(next.stdin.take());
        let _ = next.wait();
        assert!(gone, "the next shell kills what the dead one left: {own:?}");
        assert!(
            step_kept,
            "a process the step started is not the shell's to stop"
        );
        assert!(!std::path::Path::new(&hello.dir).exists());
    }

    /// The console gone before the shell could greet it: the shell's copiers (started before the
    /// greeting) do not stay behind, blocked on their FIFOs.
    #[test]
    fn a_shell_whose_console_is_gone_before_its_greeting_leaves_nothing() {
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: a plain pipe(2); both ends are owned below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let mut child = as_sshd_starts(program())
            .stdout(Stdio::from(write))
            .spawn()
            .expect("setsid sh");
        let pgid = child.id() as i32;
        let status = child.wait().expect("exit");
        assert!(!status.success(), "{status}");
        let left = group_after(pgid, 50, |g| g.is_empty());
        for p in &left {
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// The running processes of process group `pgid`.
    fn group(pgid: i32) -> Vec<i32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| runs(*p) && stat_field(*p, 5) == Some(pgid as u64))
            .collect()
    }

    /// Process group `pgid` once `done` holds for it, or after `tries` looks 20 ms apart.
    fn group_after(pgid: i32, tries: u32, done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
        let mut left = group(pgid);
        for _ in 0..tries {
            if done(&left) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            left = group(pgid);
        }
        left
    }

    /// A shell killed just after it started its copiers (a session's processes killed one by one
    /// while a shell was starting, as the fault campaign once did): none of its copiers stays,
    /// though the dead shell never wrote them down (each writes itself down and ends if its
    /// shell is gone; the next shell stops those blocked on their FIFOs). Before, the three
    /// stayed blocked for good.
    #[test]
    fn a_shell_killed_as_it_starts_its_copiers_leaves_none_of_them_behind() {
        // A directory of its own: the next shell reaps every dead shell's directory it finds.
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let killed = program().replacen("dh_cs=$!\n", "dh_cs=$!\nkill -KILL $$\n", 1);
        assert_ne!(killed, program(), "the copiers' start is where it was");
        let mut child = as_sshd_starts(killed)
            .env("TMPDIR", tmp.path())
            .spawn()
            .expect("setsid sh");
        let pgid = child.id() as i32;
        let status = child.wait().expect("exit");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // The copiers run on: each either finds its shell gone and ends, or (had it checked
        // before the kill) blocks on its FIFO, written down for the next shell.
        let copiers = group(pgid);
        std::thread::sleep(Duration::from_millis(100));
        let (mut next, _out, _) = started_shell(tmp.path());
        let left = group_after(pgid, 25, |g| g.is_empty());
        drop(next.stdin.take());
        let _ = next.wait();
        for p in copiers.iter().chain(&left) {
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        assert!(
            left.is_empty(),
            "the next shell left the dead one's copiers: {left:?}"
        );
        // The dead shell's directory went with its copiers, the next one's when it ended.
        let dirs = std::fs::read_dir(tmp.path()).expect("TMPDIR").count();
        assert_eq!(dirs, 0, "a shell's directory is left");
    }

    /// Step 1 on `shell`: a `sleep 30` started and waited for. Its stdin (to send more), the
    /// step's nonce and the sleep's pid, once the step said it.
    fn step_1_sleeping(
        shell: &mut std::process::Child,
        out: &mut BufReader<std::process::ChildStdout>,
    ) -> (std::process::ChildStdin, String, i32) {
        let mut stdin = shell.stdin.take().expect("stdin");
        let nonce = new_nonce();
        stdin
            .write_all(&run_request(1, &nonce, "sleep 30 & echo $!; wait").expect("request"))
            .expect("send");
        let mut l = Vec::new();
        out.read_until(b'\n', &mut l).expect("the step's line");
        let Record::Data(d) = parse_stdout(l.strip_suffix(b"\n").unwrap_or(&l), &nonce) else {
            panic!("{}", String::from_utf8_lossy(&l));
        };
        let sleeper: i32 = String::from_utf8_lossy(d).trim().parse().expect("a pid");
        (stdin, nonce, sleeper)
    }

    /// What a running step records for a stop: its first process (the subshell that runs the
    /// script, parent of what the script starts) and a clock reading in the unit of a process's
    /// start time, no earlier than that process and no later than anything the script starts.
    /// A `kill` request then stops what the step started, and only that.
    #[test]
    fn a_step_records_its_first_process_and_the_clock_for_its_stop() {
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let (mut shell, mut out, hello) = started_shell(tmp.path());
        let (stdin, nonce, sleeper) = step_1_sleeping(&mut shell, &mut out);
        let cur = std::fs::read_to_string(format!("{}/cur", hello.dir)).expect("cur");
        let f: Vec<&str> = cur.split_whitespace().collect();
        assert_eq!(f.len(), 3, "id, first process, clock: {cur:?}");
        assert_eq!(f[0], "1");
        let first: i32 = f[1].parse().expect("a pid");
        let clock: u64 = f[2].parse().expect("a clock reading");
        assert_eq!(
            stat_field(sleeper, 4),
            Some(first as u64),
            "the sleep's parent"
        );
        let first_started = stat_field(first, 22).expect("the first process runs");
        let sleep_started = stat_field(sleeper, 22).expect("the sleep runs");
        assert!(first_started <= clock, "{first_started} > {clock}");
        assert!(clock <= sleep_started, "{clock} > {sleep_started}");
        let (ended, kept) = stop_step_1(stdin, &mut out, &nonce, &hello);
        let stopped = !runs(sleeper) && !runs(first);
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
        let _ = shell.wait();
        assert_eq!(ended, Some(false), "ended as stopped, not passed");
        assert!(stopped, "the step's processes outlived its stop");
        assert!(
            kept,
            "the stop took a process of the shell: {:?}",
            hello.pids
        );
    }

    /// A `kill` of step 1, then its end record: whether it came (and then whether its status
    /// said passed), and whether every process the shell named as its own still runs. The
    /// shell's stdin is closed after.
    fn stop_step_1(
        mut stdin: std::process::ChildStdin,
        out: &mut BufReader<std::process::ChildStdout>,
        nonce: &str,
        hello: &Hello,
    ) -> (Option<bool>, bool) {
        stdin.write_all(b"kill 1\n").expect("kill");
        let mut ended = None;
        loop {
            let mut l = Vec::new();
            if out.read_until(b'\n', &mut l).unwrap_or(0) == 0 {
                break;
            }
            if let Record::End { code, .. } =
                parse_stdout(l.strip_suffix(b"\n").unwrap_or(&l), nonce)
            {
                ended = Some(code == 0);
                break;
            }
        }
        let kept = hello.pids.iter().all(|p| runs(*p));
        drop(stdin);
        (ended, kept)
    }

    /// A node whose `/proc/uptime` is on another clock than its processes' start times (LXCFS
    /// in LXC, LXD and Proxmox containers shows the container's uptime there): the step records
    /// its first process's start time instead, and a stop takes what the step started and
    /// nothing of the shell's. Simulated with the container's way: a file bound over
    /// `/proc/uptime` in a mount namespace of the shell's own (needs root, as the suite runs).
    #[test]
    fn a_node_whose_uptime_is_on_another_clock_still_stops_only_the_step() {
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let fake = tmp.path().join("uptime");
        std::fs::write(&fake, "5.00 9.00\n").expect("a container's uptime");
        let mut shell = Command::new("unshare")
            .args(["-m", "--", "sh", "-c"])
            .arg("mount --bind \"$0\" /proc/uptime && exec setsid sh -c \"$1\"")
            .arg(&fake)
            .arg(program())
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut out = BufReader::new(shell.stdout.take().expect("stdout"));
        let hello = greeting(&mut out).unwrap_or_else(|line| {
            let mut err = String::new();
            let _ =
                std::io::Read::read_to_string(&mut shell.stderr.take().expect("stderr"), &mut err);
            panic!("no greeting ({line}): {err}; this test needs root (unshare -m, mount --bind)")
        });
        let (stdin, nonce, sleeper) = step_1_sleeping(&mut shell, &mut out);
        let cur = std::fs::read_to_string(format!("{}/cur", hello.dir)).expect("cur");
        let f: Vec<&str> = cur.split_whitespace().collect();
        let first: i32 = f
            .get(1)
            .and_then(|p| p.parse().ok())
            .expect("the first process");
        assert_eq!(
            f.get(2).and_then(|t| t.parse().ok()),
            stat_field(first, 22),
            "the step's own start time, not the container's uptime: {cur:?}"
        );
        let (ended, kept) = stop_step_1(stdin, &mut out, &nonce, &hello);
        let stopped = !runs(sleeper);
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
        let _ = shell.wait();
        assert!(
            ended.is_some(),
            "the stop's end record never came (the shell stopped itself?)"
        );
        assert!(stopped, "the step outlived its stop");
        assert!(
            kept,
            "the stop took a process of the shell: {:?}",
            hello.pids
        );
    }

    /// A shell killed outright in the middle of a step: the next shell on the node stops what
    /// is left of that step (by the rule of a stop) before it removes the dead shell's directory.
    #[test]
    fn a_shell_killed_mid_step_has_its_step_stopped_by_the_next_shell() {
        // A directory of its own: the next shell reaps every dead shell's directory it finds.
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let start = || started_shell(tmp.path());
        let (mut dead, mut out, hello) = start();
        let (stdin, _, sleeper) = step_1_sleeping(&mut dead, &mut out);
        assert!(runs(sleeper));
        unsafe { libc::kill(hello.pids[0], libc::SIGKILL) };
        let _ = dead.wait();
        let (mut next, _o, _) = start();
        let stopped = !runs(sleeper);
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
        drop(stdin);
        drop(next.stdin.take());
        let _ = next.wait();
        assert!(stopped, "the dead shell's running step was left running");
        assert!(!std::path::Path::new(&hello.dir).exists());
    }

    /// What a shell says about step `id` from now on, line by line, as it comes (read on a
    /// thread, so that a test can tell "nothing yet" from a record).
    fn records(
        mut out: BufReader<std::process::ChildStdout>,
    ) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut l = Vec::new();
            if out.read_until(b'\n', &mut l).unwrap_or(0) == 0 || tx.send(l).is_err() {
                break;
            }
        });
        rx
    }

    /// Runs `script` as step 1 on a new shell (`first` is told the shell's greeting once the
    /// step is sent), reads up to its early status, then sends a tick every 20 ms (`between`
    /// is called before each, with the number sent so far) until the step ends. Returns
    /// whether everything the step started had ended, and how many ticks that took.
    fn ticked_to_end(
        script: &str,
        first: impl FnOnce(&Hello),
        mut between: impl FnMut(u32, &Hello),
    ) -> (bool, u32) {
        let tmp = tempfile::tempdir().expect("a TMPDIR");
        let (mut child, out, hello) = started_shell(tmp.path());
        let mut stdin = child.stdin.take().expect("stdin");
        let nonce = new_nonce();
        stdin
            .write_all(&run_request(1, &nonce, script).expect("request"))
            .expect("send");
        first(&hello);
        let rx = records(out);
        let record = |l: &[u8]| match parse_stdout(l.strip_suffix(b"\n").unwrap_or(l), &nonce) {
            Record::Data(_) => None,
            Record::Exited { .. } => Some(None),
            Record::End { all_ended, .. } => Some(Some(all_ended)),
        };
        // The early status, said unasked once the step's output closed.
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("the early status");
            match record(&l) {
                Some(None) => break,
                Some(Some(_)) => panic!("the step ended before its sentinel was reported"),
                None => {}
            }
        }
        let mut ticks = 0;
        let all_ended = loop {
            between(ticks, &hello);
            assert!(ticks < 40, "no end after {ticks} ticks");
            stdin.write_all(&tick_request(1)).expect("tick");
            ticks += 1;
            // 50 ms apart, as the console's first ticks are: a copier resumed at the third
            // tick then has its five more to report in, also on a loaded machine (20 ms apart,
            // it missed them once beside two busy loops).
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
                match record(&l) {
                    Some(Some(all)) => break all,
                    _ => panic!("{}", String::from_utf8_lossy(&l)),
                }
            }
        };
        drop(stdin);
        let _ = child.wait();
        (all_ended, ticks)
    }

    /// A step that ended whole, whose sentinel's copier is late to say so (as on a busy
    /// node): a tick finds no process holding the sentinel and waits for the copier, so the
    /// step ends as one that left nothing behind, and its shell can take the next step.
    #[test]
    fn a_late_report_of_the_sentinel_is_waited_for_not_taken_for_a_leftover() {
        // Stopped once the step runs (its sentinel open, the copier waiting in a read), not
        // before: the step's start opens the sentinel, and waits for its reader to open it.
        let copier = |h: &Hello| h.pids[3];
        let (all_ended, ticks) = ticked_to_end(
            "sleep 0.517",
            |h| {
                let running = || {
                    std::fs::read_dir("/proc")
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|e| {
                            std::fs::read(e.path().join("cmdline"))
                                .is_ok_and(|c| c == b"sleep\x000.517\x00")
                        })
                };
                let deadline = Instant::now() + Duration::from_secs(10);
                while !running() {
                    assert!(Instant::now() < deadline, "the step never started");
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert_eq!(unsafe { libc::kill(copier(h), libc::SIGSTOP) }, 0);
            },
            |tick, h| {
                if tick == 3 {
                    unsafe { libc::kill(copier(h), libc::SIGCONT) };
                }
            },
        );
        assert!(
            all_ended,
            "the step was taken for one that left something running"
        );
        assert!(
            ticks > 3,
            "ended after {ticks} ticks, with its copier stopped"
        );
    }

    /// An app left holding the sentinel (its output sent elsewhere, as a restart does) ends the
    /// step at the first tick, also from a session of its own; one the look cannot see (the
    /// sentinel moved off fd 3) ends it after a few.
    #[test]
    fn a_process_holding_the_sentinel_ends_the_step_at_once_or_after_a_few_ticks() {
        for (script, most) in [
            ("sleep 5101 >/dev/null 2>&1 &", 1),
            ("setsid sleep 5102 >/dev/null 2>&1 &", 1),
            ("sleep 5103 4>&3 3>&- >/dev/null 2>&1 &", 9),
        ] {
            let (all_ended, ticks) = ticked_to_end(script, |_| {}, |_, _| {});
            let _ = Command::new("pkill")
                .args(["-f", "^sleep 510[123]$"])
                .status();
            assert!(!all_ended, "{script}");
            assert!(ticks <= most, "{script}: {ticks} ticks");
            if most > 1 {
                assert!(ticks > 1, "{script}: {ticks} ticks");
            }
        }
    }
}
