#!/usr/bin/env bash
# Runs the official PocketBase JS SDK tests (tests/sdk/test/*.test.mjs, node:test) against a
# real Galley server, once per engine:
#   - SQLite, always;
#   - PostgreSQL when GALLEY_TEST_DATABASE_URL is set (a fresh database galley_sdk_<random>
#     is created with psql and dropped afterwards).
#
# Builds nothing: the binary comes from $GALLEY_BIN (default $CARGO_TARGET_DIR/debug/galley).
# Needs `npm ci` to have been run in tests/sdk.
#
#   cargo build -p galley && (cd tests/sdk && npm ci) && tests/sdk/run.sh
#   GALLEY_SDK_ENGINES=sqlite tests/sdk/run.sh      # only one engine
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
GALLEY_BIN="${GALLEY_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/galley}"
SU_EMAIL="sdk-admin@example.com"
SU_PASSWORD="Sdk-Admin-Pass-123"

die() { echo "run.sh: error: $*" >&2; exit 1; }

[[ -x "$GALLEY_BIN" ]] || die "no galley binary at $GALLEY_BIN (build it with 'cargo build -p galley' or set GALLEY_BIN)"
command -v node >/dev/null || die "node is not installed (Node 20+ is needed)"
[[ -d "$HERE/node_modules/pocketbase" ]] || die "the pocketbase SDK is not installed: run 'npm ci' in $HERE"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/galley-sdk.XXXXXX")"
SERVER_PID=""
PG_DB=""
PG_ADMIN_URL=""

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

drop_pg_db() {
    if [[ -n "$PG_DB" ]]; then
        psql -X -q -v ON_ERROR_STOP=1 -d "$PG_ADMIN_URL" \
            -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null \
            || echo "run.sh: warning: cannot drop database $PG_DB" >&2
        PG_DB=""
    fi
}

cleanup() {
    stop_server
    drop_pg_db
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `postgres://u@h:p/db?q` -> `postgres://u@h:p/<name>?q`
with_database() {
    node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$1" "$2"
}

# run_engine NAME [--database-url URL]
run_engine() {
    local engine="$1"; shift
    local dir="$WORK/$engine"
    local log="$WORK/$engine.log"
    mkdir -p "$dir"
    echo "== SDK tests on $engine"

    "$GALLEY_BIN" superuser upsert "$SU_EMAIL" "$SU_PASSWORD" --dir "$dir/data" "$@" \
        || die "[$engine] 'galley superuser upsert' failed"

    # Port 0: the server picks a free port and prints it; no race with other processes.
    # The shop's hook file (tests/sdk/hooks) runs too: shop.test.mjs drives it.
    "$GALLEY_BIN" serve --http 127.0.0.1:0 --dir "$dir/data" --hooks-dir "$HERE/hooks" "$@" >"$log" 2>&1 &
    SERVER_PID=$!

    local url=""
    for _ in $(seq 1 300); do
        url="$(sed -n 's|.*serving on \(http://[^/ ]*\)/api/.*|\1|p' "$log" | head -n1)"
        [[ -n "$url" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "[$engine] galley serve exited during start-up"; }
        sleep 0.1
    done
    [[ -n "$url" ]] || { cat "$log" >&2; die "[$engine] galley serve did not start within 30 s"; }
    echo "   server $url (pid $SERVER_PID)"

    local status=0
    (cd "$HERE" && GALLEY_URL="$url" GALLEY_ENGINE="$engine" \
        GALLEY_SU_EMAIL="$SU_EMAIL" GALLEY_SU_PASSWORD="$SU_PASSWORD" \
        node --test --test-reporter=spec test/*.test.mjs) || status=$?

    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "run.sh: the server died during the tests; its log:" >&2
        cat "$log" >&2
        status=1
    fi
    stop_server
    if [[ $status -ne 0 ]]; then
        echo "---- server log ($engine, last 50 lines) ----" >&2
        tail -n 50 "$log" >&2
        die "[$engine] SDK tests failed"
    fi
    echo "== SDK tests on $engine: passed"
}

ENGINES="${GALLEY_SDK_ENGINES:-sqlite postgres}"
ran=()
for engine in $ENGINES; do
    case "$engine" in
        sqlite)
            run_engine sqlite
            ran+=(sqlite)
            ;;
        postgres)
            if [[ -z "${GALLEY_TEST_DATABASE_URL:-}" ]]; then
                echo "== SDK tests on postgres: skipped (GALLEY_TEST_DATABASE_URL is not set)"
                continue
            fi
            command -v psql >/dev/null || die "GALLEY_TEST_DATABASE_URL is set but psql is not installed (apt-get install postgresql-client)"
            PG_ADMIN_URL="$GALLEY_TEST_DATABASE_URL"
            PG_DB="galley_sdk_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
            psql -X -q -v ON_ERROR_STOP=1 -d "$PG_ADMIN_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null \
                || die "cannot create database $PG_DB on $PG_ADMIN_URL"
            run_engine postgres --database-url "$(with_database "$PG_ADMIN_URL" "$PG_DB")"
            drop_pg_db
            ran+=(postgres)
            ;;
        *) die "unknown engine '$engine' in GALLEY_SDK_ENGINES (sqlite, postgres)" ;;
    esac
done

[[ ${#ran[@]} -gt 0 ]] || die "no engine ran"
echo "SDK tests passed on: ${ran[*]}"
