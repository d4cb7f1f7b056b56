#!/usr/bin/env bash
# Console figures that criterion cannot take: CPU used by an idle, paused console over 10 s (and
# by an idle home screen), and
# the time from pressing `p` to the screen showing PAUSING, both on the real `deckhand demo` in a
# real terminal (tmux). Prints the figures; docs/benchmarks.md keeps them.
#
# The latency is measured from outside (tmux send-keys, then capture-pane polled until the word
# appears), so it includes tmux's own delays: it is an upper bound.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin="$PWD/target/release/deckhand"
work=$(mktemp -d)
sock="deckhand-bench-$$"
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

tmux -L "$sock" -f /dev/null new-session -d -s bench -x 120 -y 36 \
    "exec env LANG=C.UTF-8 XDG_STATE_HOME='$work/state' '$bin' demo --nodes 5 --dir '$work/demo' 2>'$work/stderr'"

python3 - "$sock" <<'PY'
import os, subprocess, sys, time

sock = sys.argv[1]
def tmux(*args):
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True).stdout
def header():
    return tmux("capture-pane", "-p", "-t", "bench").split("\n", 1)[0]
def wait(pred, what, secs=60):
    end = time.time() + secs
    while time.time() < end:
        h = header()
        if pred(h):
            return h
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}; header: {header()!r}")
def key(k):
    tmux("send-keys", "-t", "bench", k)

pid = int(tmux("list-panes", "-t", "bench", "-F", "#{pane_pid}").strip())
wait(lambda h: "DEPLOYING" in h or "WAITING" in h, "the run to start")

# key -> PAUSING, a few times (resuming in between; enter passes the first gate)
lat = []
for _ in range(5):
    h = wait(lambda h: "DEPLOYING" in h or "WAITING" in h or "DONE" in h, "a running state")
    if "WAITING" in h:
        key("Enter")
        wait(lambda h: "DEPLOYING" in h, "the promote")
    if "DONE" in h:
        break
    t0 = time.perf_counter()
    key("p")
    wait(lambda h: "PAUSING" in h or "PAUSED" in h, "PAUSING")
    lat.append((time.perf_counter() - t0) * 1000)
    wait(lambda h: "PAUSED" in h, "PAUSED")
    if len(lat) < 5:
        key("p")
        wait(lambda h: "PAUSED" not in h, "the resume")

# idle paused console: CPU over 10 s
wait(lambda h: "PAUSED" in h, "PAUSED")
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
c0, t0 = cpu(), time.time()
time.sleep(10)
c1, t1 = cpu(), time.time()
pct = (c1 - c0) / tick / (t1 - t0) * 100
lat.sort()
print(f"key p -> PAUSING on screen (tmux, {len(lat)} presses): median {lat[len(lat)//2]:.1f} ms, max {lat[-1]:.1f} ms")
print(f"idle paused console over {t1 - t0:.1f} s: {pct:.2f} % of one core ({c1 - c0} ticks of 1/{tick} s)")
key("q")
PY

# The home screen on the same inventory, every node read, then left alone: CPU over 10 s.
tmux -L "$sock" -f /dev/null new-session -d -s home -x 120 -y 36 \
    "exec env LANG=C.UTF-8 XDG_STATE_HOME='$work/state' '$bin' -i '$work/demo/deckhand.toml' 2>>'$work/stderr'"
python3 - "$sock" <<'PY'
import os, subprocess, sys, time

sock = sys.argv[1]
def tmux(*args):
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True).stdout
end = time.time() + 60
while time.time() < end:
    h = tmux("capture-pane", "-p", "-t", "home").split("\n", 1)[0]
    if "HOME" in h and "reading" not in h:
        break
    time.sleep(0.05)
else:
    sys.exit("timed out waiting for the home screen")
pid = int(tmux("list-panes", "-t", "home", "-F", "#{pane_pid}").strip())
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
time.sleep(1)
c0, t0 = cpu(), time.time()
time.sleep(10)
c1, t1 = cpu(), time.time()
pct = (c1 - c0) / tick / (t1 - t0) * 100
print(f"idle home screen (every node read) over {t1 - t0:.1f} s: {pct:.2f} % of one core ({c1 - c0} ticks of 1/{tick} s)")
tmux("send-keys", "-t", "home", "q")
PY
