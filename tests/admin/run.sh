#!/usr/bin/env bash
# Runs the dashboard's browser tests (tests/admin/test/*.test.mjs, node:test + playwright-core
# driving Debian's headless Chromium) against a real Galley server started on a free port with
# a fresh data dir (or PostgreSQL database) and no superuser, so the tests begin at the
# printed install link. Once per engine: SQLite always, PostgreSQL when
# GALLEY_TEST_DATABASE_URL is set (a fresh database galley_admin_<random>, dropped after).
# Screenshots of every page go to tests/admin/output/<engine>/ (gitignored).
#
# Builds nothing: the binary comes from $GALLEY_BIN (default $CARGO_TARGET_DIR/debug/galley).
# Needs `npm ci` in tests/admin and /usr/bin/chromium (apt-get install -y chromium).
#
#   cargo build -p galley && (cd tests/admin && npm ci) && tests/admin/run.sh
#   GALLEY_ADMIN_ENGINES=sqlite tests/admin/run.sh      # only one engine
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
PG_DB=""
cleanup() {
    stop_server
    drop_pg_db
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

with_database() {
    node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$1" "$2"
}

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

drop_pg_db() {
    if [[ -n "$PG_DB" ]]; then
        psql -X -q -d "$GALLEY_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null \
            || echo "run.sh: warning: cannot drop database $PG_DB" >&2
        PG_DB=""
    fi
}

# run_engine NAME [--database-url URL]
run_engine() {
    local engine="$1"; shift
    local log="$WORK/$engine.log" out="$HERE/output/$engine"
    echo "== dashboard browser tests on $engine"
    "$GALLEY_BIN" serve --http 127.0.0.1:0 --dir "$WORK/$engine-data" "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    local url="" install=""
    for _ in $(seq 1 300); do
        url="$(sed -n 's|.*serving on \(http://[^/ ]*\)/api/.*|\1|p' "$log" | head -n1)"
        install="$(grep -o 'http://[^ ]*/_/install?token=[0-9a-f]*' "$log" | head -n1 || true)"
        [[ -n "$url" && -n "$install" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "[$engine] galley serve exited during start-up"; }
        sleep 0.1
    done
    [[ -n "$url" && -n "$install" ]] || { cat "$log" >&2; die "[$engine] galley serve did not print its address and install link within 30 s"; }
    echo "   server $url (pid $SERVER_PID)"
    mkdir -p "$out"
    local status=0
    (cd "$HERE" && GALLEY_URL="$url" GALLEY_INSTALL_URL="$install" CHROMIUM="$CHROMIUM" \
        ADMIN_OUTPUT="$out" node --test --test-concurrency=1 --test-reporter=spec test/*.test.mjs) || status=$?
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "run.sh: the server died during the tests; its log:" >&2
        cat "$log" >&2
        status=1
    fi
    stop_server
    if [[ $status -ne 0 ]]; then
        echo "---- server log ($engine, last 50 lines) ----" >&2
        tail -n 50 "$log" >&2
        die "[$engine] dashboard browser tests failed (screenshots in $out)"
    fi
    echo "== dashboard browser tests on $engine: passed (screenshots in $out)"
}

rm -rf "$HERE/output" && mkdir -p "$HERE/output"
ENGINES="${GALLEY_ADMIN_ENGINES:-sqlite postgres}"
ran=()
for engine in $ENGINES; do
    case "$engine" in
        sqlite) run_engine sqlite; ran+=(sqlite) ;;
        postgres)
            if [[ -z "${GALLEY_TEST_DATABASE_URL:-}" ]]; then
                echo "== dashboard browser tests on postgres: skipped (GALLEY_TEST_DATABASE_URL is not set)"
                continue
            fi
            command -v psql >/dev/null || die "GALLEY_TEST_DATABASE_URL is set but psql is not installed"
            PG_DB="galley_admin_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
            psql -X -q -v ON_ERROR_STOP=1 -d "$GALLEY_TEST_DATABASE_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null \
                || die "cannot create database $PG_DB"
            run_engine postgres --database-url "$(with_database "$GALLEY_TEST_DATABASE_URL" "$PG_DB")"
            drop_pg_db
            ran+=(postgres)
            ;;
        *) die "unknown engine '$engine' in GALLEY_ADMIN_ENGINES (sqlite, postgres)" ;;
    esac
done
[[ ${#ran[@]} -gt 0 ]] || die "no engine ran"
echo "Dashboard browser tests passed on: ${ran[*]}"
