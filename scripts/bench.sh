#!/usr/bin/env bash
# Benchmarks that need the loopback sshd fleet (OpenSSH server and client, HAProxy, python3).
# Each prints Markdown tables; docs/benchmarks.md keeps the figures and says what they mean.
#
#   scripts/bench.sh [ssh]        the SSH transport: connect times, one step, a 10-node deploy
#                                 (benches/ssh.rs; what this script always ran)
#   scripts/bench.sh deploy       the rolling deploy against the work alone: 5 and 20 nodes one at
#                                 a time, 50 in batches of 20 %, directly, through the bastion and
#                                 over a slow link (benches/deploy)
#   scripts/bench.sh rollback     20 nodes deployed with deckhand's builtins and rolled back
#   scripts/bench.sh tools        the same deploy with deckhand, Capistrano and Ansible in turn
#   scripts/bench.sh scale        100 nodes: connecting, a deploy in batches of 10, the console
#   scripts/bench.sh all          deploy, rollback, tools and scale in one run
#   scripts/bench.sh campaign [N] [SEED]
#                                 the random fault campaign's long form (tests/campaign.rs): N
#                                 rounds (default 200), each a deploy with one fault, recovered and
#                                 checked; prints its summary (rounds, faults by kind, violations,
#                                 requests, failed). A seed (default: the time) makes it replayable.
#
# After the name, `quick` shrinks the fleets: a check that the harness works, not figures.
#
# `tools` installs Capistrano and ansible-core (Debian packages) when they are missing: they are
# only the bench's, never the tests'. DECKHAND_BENCH_PROFILE=dev skips the optimised build (the
# figures are mostly ssh's own).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${DECKHAND_BENCH_PROFILE:-bench}"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

install() {
    [ $# -gt 0 ] || return 0
    echo "bench.sh: installing $*" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

part="${1:-ssh}"
case "$part" in
    ssh | deploy | rollback | tools | scale | all | campaign) ;;
    -*) part=ssh ;; # flags for the ssh bench, as before
    *)
        echo "bench.sh: unknown bench \`$part\`; use ssh, deploy, rollback, tools, scale, all or campaign" >&2
        exit 2
        ;;
esac
[ $# -gt 0 ] && [ "$1" = "$part" ] && shift

need=()
have sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
if [ "$part" != ssh ]; then
    have haproxy || need+=(haproxy)
    [ -x /usr/bin/python3 ] || need+=(python3)
    have tmux || need+=(tmux)
    have socat || need+=(socat)
fi
if [ "$part" = tools ] || [ "$part" = all ]; then
    have cap || need+=(capistrano)
    have ansible-playbook || need+=(ansible-core)
fi
install "${need[@]+"${need[@]}"}"

case "$part" in
    campaign)
        rounds="${1:-200}"
        seed="${2:-$(date +%s)}"
        echo "bench.sh: campaign of $rounds rounds, seed $seed" >&2
        DECKHAND_CAMPAIGN_ROUNDS="$rounds" DECKHAND_CAMPAIGN_SEED="$seed" \
            exec cargo test --locked --release --test campaign -- --nocapture
        ;;
    ssh) exec cargo bench --locked --profile "$profile" --bench ssh "$@" ;;
    all) exec cargo bench --locked --profile "$profile" --bench deploy -- deploy rollback tools scale "$@" ;;
    *) exec cargo bench --locked --profile "$profile" --bench deploy -- "$part" "$@" ;;
esac
