#!/usr/bin/env bash
# Benchmarks the job queue with a release build of `recap`:
#   1. no-op jobs per second with two workers (`recap worker --workers 2`), on SQLite and, when
#      BENCH_POSTGRES_URL (or RECAP_TEST_POSTGRES_URL) is set, on PostgreSQL;
#   2. webhook deliveries per second to a local receiver (SQLite; python3 for the receiver).
#
#   bench/jobs.sh                         # 20000 no-op jobs, 2000 deliveries
#   BENCH_JOBS=50000 BENCH_DELIVERIES=5000 bench/jobs.sh
#
# Environment:
#   BENCH_JOBS          no-op jobs per engine (default 20000)
#   BENCH_DELIVERIES    webhook deliveries (default 2000; 0 skips the delivery run)
#   BENCH_WORKERS       workers of the worker process (default 2)
#   BENCH_POSTGRES_URL  an admin URL of a PostgreSQL server (a scratch database is created and dropped)
#   CARGO_TARGET_DIR    where cargo builds (default $HOME/.cache/recap-target)
#
# Time runs from the worker's start until no job is pending or running (polled every 250 ms), so
# the figures include the worker's start-up: a slight under-estimate.
set -euo pipefail

jobs=${BENCH_JOBS:-20000}
deliveries=${BENCH_DELIVERIES:-2000}
workers=${BENCH_WORKERS:-2}
pg_admin=${BENCH_POSTGRES_URL:-${RECAP_TEST_POSTGRES_URL:-}}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}
echo "==> building the release binary (target dir $CARGO_TARGET_DIR)"
(cd "$root" && cargo build --release -p recap)
recap=$CARGO_TARGET_DIR/release/recap

tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-jobs-bench.XXXXXX")
pids=()
pg_db=
cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $pg_db ]]; then psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"
exec 3>&2 2>"$tmp/script.err"  # keep bash's job-kill notices out of the report
trap 'cat "$tmp/script.err" >&3 2>/dev/null || true; cleanup' ERR

export SECRET_KEY=bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz
export LOG_LEVEL=warn JOBS_DEBUG_KINDS=true JOB_POLL_INTERVAL=100ms SCHEDULER_ENABLED=false

now() { date +%s.%N; }
# Polled with psql / python's sqlite3 rather than `recap jobs list`: a process of ours per poll
# would take CPU from the worker on a small machine.
unfinished_sql="SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')"
queue_empty() {
    local n
    if [[ $DATABASE_URL == postgres* ]]; then
        n=$(psql "$DATABASE_URL" -Atc "$unfinished_sql")
    else
        n=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
            "${DATABASE_URL#sqlite://}" "$unfinished_sql")
    fi
    [[ $n == 0 ]]
}
# Runs a worker until the queue is empty; prints "<count> <seconds> <per second>".
drain_with_worker() {
    local count=$1 start end pid
    start=$(now)
    "$recap" worker --workers "$workers" >/dev/null 2>"$tmp/worker.err" &
    pid=$!
    pids+=("$pid")
    until queue_empty; do
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/worker.err" >&2; exit 1; }
        sleep 0.25
    done
    end=$(now)
    kill -TERM "$pid"
    wait "$pid" || true
    python3 -c "s = $end - $start; print(f'$count {s:.2f} {$count / s:.0f}')"
}

noop_run() {
    local engine=$1
    "$recap" db upgrade >/dev/null
    "$recap" jobs enqueue debug.noop --count "$jobs" >/dev/null
    # Fresh statistics after the bulk insert, as autovacuum would eventually give a live queue.
    if [[ $engine == postgres ]]; then psql "$DATABASE_URL" -qc "VACUUM ANALYZE jobs"; fi
    read -r n secs rate < <(drain_with_worker "$jobs")
    local failed
    failed=$("$recap" jobs list --state dead --limit 1 --json)
    [[ $failed == "[]" ]] || { echo "dead jobs after the run" >&2; exit 1; }
    echo "no-op jobs  $engine: $n jobs in ${secs}s = $rate jobs/s ($workers workers)"
}

echo "==> no-op jobs on SQLite"
DATABASE_URL="sqlite://$tmp/noop.db" noop_run sqlite

if [[ -n $pg_admin ]]; then
    echo "==> no-op jobs on PostgreSQL"
    pg_db=recap_jobs_bench_$$
    psql "$pg_admin" -qc "CREATE DATABASE $pg_db" >/dev/null
    DATABASE_URL="${pg_admin%/*}/$pg_db" noop_run postgres
else
    echo "(PostgreSQL skipped: set BENCH_POSTGRES_URL)"
fi

if [[ $deliveries -gt 0 ]]; then
    echo "==> webhook deliveries to a local receiver (SQLite)"
    export DATABASE_URL="sqlite://$tmp/hooks.db" OUTBOUND_ALLOWLIST=127.0.0.1 RATE_LIMIT_REQUESTS=1000000000
    python3 -u - >"$tmp/receiver.out" <<'PY' &
import http.server
class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        # One write: headers and body in separate small writes meet Nagle + delayed ACK (40 ms).
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
    pids+=("$!")
    WORKERS=0 "$recap" serve --port 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
    serve_pid=$!
    pids+=("$serve_pid")
    for _ in $(seq 1 100); do
        [[ -s $tmp/receiver.out ]] && grep -q "listening on" "$tmp/serve.out" 2>/dev/null && break
        sleep 0.1
    done
    receiver_port=$(head -n1 "$tmp/receiver.out")
    api=$(sed -n 's/^listening on //p' "$tmp/serve.out")
    # One user, one webhook, then one item.created event (one delivery) per item.
    python3 - "$api" "$receiver_port" "$deliveries" <<'PY'
import http.client, json, sys, urllib.parse
api, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(api)
c = http.client.HTTPConnection(u.hostname, u.port)
def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    data = r.read()
    assert r.status < 300, (path, r.status, data)
    return json.loads(data) if data else None
user = {"email": "bench@example.com", "password": "correct-horse-42"}
call("POST", "/api/v1/auth/register", user)
token = call("POST", "/api/v1/auth/login", user)["access_token"]
call("POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{port}/hook", "events": ["item.created"]}, token)
for i in range(count):
    call("POST", "/api/v1/items", {"title": f"item {i}"}, token)
PY
    kill -TERM "$serve_pid"
    wait "$serve_pid" || true
    read -r n secs rate < <(drain_with_worker "$deliveries")
    failed=$("$recap" jobs list --state dead --limit 1 --json)
    [[ $failed == "[]" ]] || { echo "failed deliveries after the run" >&2; exit 1; }
    echo "deliveries  sqlite: $n deliveries in ${secs}s = $rate deliveries/s ($workers workers)"
fi
