#!/usr/bin/env bash
# Run deckhand's whole test suite. Installs what the integration tests need when it is missing
# (OpenSSH server and client, HAProxy, socat, tmux, python3, ansible-core, man-db) with apt-get,
# then runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

need=()
have sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
have ssh-keygen || need+=(openssh-client)
have haproxy || need+=(haproxy)
have socat || need+=(socat)
have tmux || need+=(tmux)
# The SSH fleet's HTTP app runs as a test login user, so it needs the system python3.
[ -x /usr/bin/python3 ] || need+=(python3)
have curl || need+=(curl)
have prometheus || need+=(prometheus)
# `deckhand init --from-ansible` is compared with Ansible's own reading of the same inventory.
have ansible-inventory || need+=(ansible-core)
# The man page test renders it with `man -l`.
have man || need+=(man-db)

if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo --version
cargo test --locked "$@"
