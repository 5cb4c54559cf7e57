#!/usr/bin/env bash
# A/B runs of one Galley build through galley-bench's --galley (which starts `galley serve`):
# runs the binary $GALLEY_REAL, adds $GALLEY_SERVE_ARGS to `serve` (e.g. "--metrics
# 127.0.0.1:0") and, once the server answers, PATCHes $GALLEY_SETTINGS (JSON, e.g.
# '{"logs":{"maxDays":0}}' for logging off) as the benchmark's superuser. See BENCHMARKS.md.
set -euo pipefail
real="${GALLEY_REAL:?set GALLEY_REAL to the galley binary}"
if [[ "${1:-}" != serve ]]; then
    exec "$real" "$@"
fi
shift
addr=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ "${args[$i]}" == --http ]]; then addr="${args[$((i + 1))]}"; fi
done
# shellcheck disable=SC2086
"$real" serve ${GALLEY_SERVE_ARGS:-} "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
if [[ -n "${GALLEY_SETTINGS:-}" && -n "$addr" ]]; then
    for _ in $(seq 200); do
        curl -sf "http://$addr/api/health" >/dev/null && break
        sleep 0.05
    done
    token=$(curl -sf -X POST "http://$addr/api/collections/_superusers/auth-with-password" \
        -H 'content-type: application/json' \
        -d '{"identity":"bench@example.com","password":"Bench-Pass-12345"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    curl -sf -X PATCH "http://$addr/api/settings" -H "Authorization: $token" \
        -H 'content-type: application/json' -d "$GALLEY_SETTINGS" >/dev/null
    echo "[galley-variant] settings applied: $GALLEY_SETTINGS" >&2
fi
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid" || true
done
