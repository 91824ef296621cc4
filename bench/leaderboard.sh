#!/usr/bin/env bash
# Leaderboard latency over a large history: 1,000,000 commits by 500 authors pushed through the
# ingestion route into a fresh release server, then p50/p99 of the leaderboard route.
#
#   bench/leaderboard.sh                       # SQLite
#   RECAP_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/leaderboard.sh
#   BENCH_COMMITS=200000 bench/leaderboard.sh  # a smaller run
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}
(cd "$root" && cargo build --release -p recap -p recap-bench)
recap=$CARGO_TARGET_DIR/release/recap
board=$CARGO_TARGET_DIR/release/leaderboard
tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-board.XXXXXX")
pid=
pg_db=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [[ -n $pg_db ]] && psql "$RECAP_BENCH_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

run() {
    local engine=$1 url=$2
    echo "==> $engine"
    (
        cd "$tmp"
        export DATABASE_URL=$url RATE_LIMIT_REQUESTS=1000000000 SYNC_RATE_LIMIT=1000000000 LOG_LEVEL=${LOG_LEVEL:-warn}
        exec "$recap" serve --port 0
    ) >"$tmp/out.$engine" 2>"$tmp/err.$engine" &
    pid=$!
    local base=
    for _ in $(seq 1 300); do
        base=$(sed -n 's/^listening on //p' "$tmp/out.$engine")
        [[ -n $base ]] && break
        sleep 0.1
    done
    [[ -n $base ]] || { cat "$tmp/err.$engine" >&2; exit 1; }
    "$board" --url "$base" --commits "${BENCH_COMMITS:-1000000}" --authors "${BENCH_AUTHORS:-500}" --queries "${BENCH_QUERIES:-50}"
    kill -TERM "$pid"
    wait "$pid"
    pid=
}

run sqlite "sqlite://$tmp/board.db"
if [[ -n ${RECAP_BENCH_POSTGRES_URL:-} ]]; then
    pg_db="recap_board_bench_$$"
    psql "$RECAP_BENCH_POSTGRES_URL" -qAt -c "CREATE DATABASE \"$pg_db\"" >/dev/null
    run postgres "${RECAP_BENCH_POSTGRES_URL%/*}/$pg_db"
fi
