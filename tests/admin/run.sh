#!/usr/bin/env bash
# Runs the dashboard's browser tests (tests/admin/test/*.test.mjs, node:test + playwright-core
# driving Debian's headless Chromium) against a real Galley server started on a free port with
# a fresh data dir and no superuser, so the tests begin at the printed install link.
# Screenshots of every page go to tests/admin/output/ (gitignored).
#
# Builds nothing: the binary comes from $GALLEY_BIN (default $CARGO_TARGET_DIR/debug/galley).
# Needs `npm ci` in tests/admin and /usr/bin/chromium (apt-get install -y chromium).
#
#   cargo build -p galley && (cd tests/admin && npm ci) && tests/admin/run.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
GALLEY_BIN="${GALLEY_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/galley}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

die() { echo "run.sh: error: $*" >&2; exit 1; }

[[ -x "$GALLEY_BIN" ]] || die "no galley binary at $GALLEY_BIN (build it with 'cargo build -p galley' or set GALLEY_BIN)"
command -v node >/dev/null || die "node is not installed (Node 20+ is needed)"
[[ -x "$CHROMIUM" ]] || die "no Chromium at $CHROMIUM (apt-get install -y chromium)"
[[ -d "$HERE/node_modules/playwright-core" ]] || die "playwright-core is not installed: run 'npm ci' in $HERE"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/galley-admin.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOG="$WORK/server.log"
"$GALLEY_BIN" serve --http 127.0.0.1:0 --dir "$WORK/data" >"$LOG" 2>&1 &
SERVER_PID=$!

URL=""; INSTALL=""
for _ in $(seq 1 300); do
    URL="$(sed -n 's|.*serving on \(http://[^/ ]*\)/api/.*|\1|p' "$LOG" | head -n1)"
    INSTALL="$(grep -o 'http://[^ ]*/_/install?token=[0-9a-f]*' "$LOG" | head -n1 || true)"
    [[ -n "$URL" && -n "$INSTALL" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; die "galley serve exited during start-up"; }
    sleep 0.1
done
[[ -n "$URL" && -n "$INSTALL" ]] || { cat "$LOG" >&2; die "galley serve did not print its address and install link within 30 s"; }
echo "   server $URL (pid $SERVER_PID)"

rm -rf "$HERE/output" && mkdir -p "$HERE/output"
status=0
(cd "$HERE" && GALLEY_URL="$URL" GALLEY_INSTALL_URL="$INSTALL" CHROMIUM="$CHROMIUM" \
    ADMIN_OUTPUT="$HERE/output" node --test --test-concurrency=1 --test-reporter=spec test/*.test.mjs) || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: the server died during the tests; its log:" >&2
    cat "$LOG" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    echo "---- server log (last 50 lines) ----" >&2
    tail -n 50 "$LOG" >&2
    die "dashboard browser tests failed (screenshots in $HERE/output)"
fi
echo "Dashboard browser tests passed (screenshots in $HERE/output)"
