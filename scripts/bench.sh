#!/usr/bin/env bash
# Benchmarks that need the loopback sshd fleet (OpenSSH server and client, python3): prints
# connect times, per-step overhead and a 10-node deploy's wall time as a Markdown table.
# DECKHAND_BENCH_PROFILE=dev skips the optimised build (the figures are mostly ssh's own).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${DECKHAND_BENCH_PROFILE:-bench}"
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
    echo "bench.sh: needs OpenSSH: apt-get install openssh-server openssh-client" >&2
    exit 2
fi
exec cargo bench --locked --profile "$profile" --bench ssh "$@"
