#!/usr/bin/env bash
# Make screenshots/*.png: draw each console screen (the same reducer and drawing code the live
# console uses, fed with the scenes in src/ui/fixtures.rs and with a recorded demo run) into an
# off-screen buffer, write it as SVG cell by cell, and convert it with rsvg-convert. Installs
# librsvg2-bin and the DejaVu fonts with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rsvg-convert >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -q "DejaVu Sans Mono"; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        librsvg2-bin fonts-dejavu-core fontconfig >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p screenshots
# A real run to picture as well: the demo with a failing health check on web-3, recorded.
cargo build --quiet
XDG_STATE_HOME="$tmp/state" target/debug/deckhand demo --headless --fast --fail-node web-3 \
    --dir "$tmp/demo" >/dev/null 2>&1 || true
journal=$(ls "$tmp"/state/deckhand/*.jsonl)
cargo run --quiet --example screenshots -- "$tmp" "$journal" >/dev/null
for svg in "$tmp"/*.svg; do
    name=$(basename "${svg%.svg}")
    rsvg-convert --zoom 1.25 --output "screenshots/$name.png" "$svg"
    echo "screenshots/$name.png"
done
