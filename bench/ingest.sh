#!/usr/bin/env bash
# Benchmarks push ingestion (POST /api/v1/sync/projects/{p}/repos/{r}/commits) on a release build
# of `recap serve`, through HTTP with an API key, with the in-repo load generator
# (crates/recap-bench/src/bin/ingest.rs): N batches of 1000 new commits over several keep-alive
# connections, then the very same batches again (all duplicates). Prints commits/s for both.
#
#   bench/ingest.sh                                   # SQLite only
#   RECAP_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bench/ingest.sh
#
# Environment:
#   BENCH_BATCHES             batches per round (default 200, i.e. 200,000 commits)
#   BENCH_BATCH_SIZE          commits per batch (default 1000)
#   BENCH_CONNECTIONS         concurrent connections (default 8)
#   RECAP_BENCH_POSTGRES_URL  also run on PostgreSQL: a database is created on that server for
#                             the run and dropped afterwards (the URL's own database is untouched)
#   LOG_LEVEL                 server log level (default warn)
#   CARGO_TARGET_DIR          where cargo builds (default $HOME/.cache/recap-target)
#
# Each run starts a fresh server on a fresh database with the rate limits raised out of the way
# (RATE_LIMIT_REQUESTS, SYNC_RATE_LIMIT). Exits non-zero if any answer was not the expected 201,
# if the server does not hold exactly the pushed commits at the end, or if it does not stop on SIGTERM.
set -euo pipefail

batches=${BENCH_BATCHES:-200}
batch_size=${BENCH_BATCH_SIZE:-1000}
connections=${BENCH_CONNECTIONS:-8}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}

echo "==> building release binaries (target dir $CARGO_TARGET_DIR)"
(cd "$root" && cargo build --release -p recap -p recap-bench)
recap=$CARGO_TARGET_DIR/release/recap
ingest=$CARGO_TARGET_DIR/release/ingest

tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-ingest.XXXXXX")
server_pid=
pg_db=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $pg_db ]]; then
        psql "$RECAP_BENCH_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# run_one LABEL DATABASE_URL
run_one() {
    local label=$1 database_url=$2
    echo "==> $label: starting recap serve"
    : >"$tmp/server.out"
    (
        cd "$tmp"
        export DATABASE_URL="$database_url"
        export RATE_LIMIT_REQUESTS=1000000000 SYNC_RATE_LIMIT=1000000000
        export LOGIN_RATE_LIMIT_PER_IP=1000000 LOGIN_RATE_LIMIT_PER_ACCOUNT=1000000
        export LOG_LEVEL=${LOG_LEVEL:-warn}
        exec "$recap" serve --host 127.0.0.1 --port 0
    ) >"$tmp/server.out" 2>"$tmp/server.err" &
    server_pid=$!
    local base=
    for _ in $(seq 1 300); do
        if line=$(grep -m1 '^listening on ' "$tmp/server.out"); then
            base=${line#listening on }
            break
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "error: recap serve exited before listening" >&2
            tail -n 20 "$tmp/server.err" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    if [[ -z $base ]]; then
        echo "error: no 'listening on' line from recap serve after 30 s" >&2
        exit 1
    fi
    echo "    pid $server_pid, $base"
    if ! "$ingest" --url "$base" --batches "$batches" --batch-size "$batch_size" --connections "$connections"; then
        echo "error: the $label run failed" >&2
        tail -n 20 "$tmp/server.err" >&2 || true
        exit 1
    fi
    kill -TERM "$server_pid"
    local code=0
    wait "$server_pid" || code=$?
    server_pid=
    if [[ $code -ne 0 ]]; then
        echo "error: recap serve exited with $code on SIGTERM" >&2
        exit 1
    fi
}

run_one "SQLite" "sqlite://$tmp/bench.db"

if [[ -n ${RECAP_BENCH_POSTGRES_URL:-} ]]; then
    pg_db="recap_ingest_bench_$$"
    psql "$RECAP_BENCH_POSTGRES_URL" -qAt -c "CREATE DATABASE \"$pg_db\"" >/dev/null
    # The same server and credentials, the new database.
    base_url=${RECAP_BENCH_POSTGRES_URL%%\?*}
    query=
    [[ $RECAP_BENCH_POSTGRES_URL == *\?* ]] && query="?${RECAP_BENCH_POSTGRES_URL#*\?}"
    scheme_rest=${base_url#*://}
    if [[ $scheme_rest == */* ]]; then base_url=${base_url%/*}; fi
    run_one "PostgreSQL" "$base_url/$pg_db$query"
    psql "$RECAP_BENCH_POSTGRES_URL" -qAt -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null
    pg_db=
else
    echo "==> PostgreSQL skipped (set RECAP_BENCH_POSTGRES_URL to run it)"
fi
