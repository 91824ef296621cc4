#!/usr/bin/env bash
# Time to the first recap chunk over the WebSocket (`/ws/{session_id}`) with the offline LLM
# provider, on a release build of `recap serve` (fresh SQLite database in a temporary directory).
#
#   bench/ws.sh                          # 200 recaps of 500 activity entries
#   BENCH_REQUESTS=50 BENCH_ENTRIES=2000 bench/ws.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}
(cd "$root" && cargo build --release -p recap -p recap-bench)
recap=$CARGO_TARGET_DIR/release/recap
ws=$CARGO_TARGET_DIR/release/ws
tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-ws.XXXXXX")
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

(
    cd "$tmp"
    export DATABASE_URL="sqlite://$tmp/ws.db" RATE_LIMIT_REQUESTS=1000000000 LOG_LEVEL=${LOG_LEVEL:-warn}
    unset LLM_PROVIDER LLM_API_KEY LLM_BASE_URL
    exec "$recap" serve --port 0
) >"$tmp/out" 2>"$tmp/err" &
pid=$!
base=
for _ in $(seq 1 300); do
    base=$(sed -n 's/^listening on //p' "$tmp/out")
    [[ -n $base ]] && break
    sleep 0.1
done
[[ -n $base ]] || { cat "$tmp/err" >&2; exit 1; }
"$ws" --url "$base" --requests "${BENCH_REQUESTS:-200}" --entries "${BENCH_ENTRIES:-500}"
kill -TERM "$pid"
wait "$pid"
pid=
