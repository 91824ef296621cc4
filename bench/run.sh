#!/usr/bin/env bash
# Benchmarks a release build of `recap serve` with the in-repo load generator (crates/recap-bench).
#
#   bench/run.sh                                  # 32 connections, 10 s per route, 2 s warm-up
#   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 bench/run.sh
#
# Environment:
#   BENCH_SECONDS       recorded seconds per route (default 10)
#   BENCH_CONNECTIONS   keep-alive connections (default 32)
#   BENCH_WARMUP        unrecorded warm-up seconds per route (default 2)
#   BENCH_ROUTES        space-separated paths (default "/health /api/v1/status")
#   LOG_LEVEL           server log level (default warn)
#   CARGO_TARGET_DIR    where cargo builds (default $HOME/.cache/recap-target)
#
# The server runs on a fresh SQLite database in a temporary directory, on a free port, with the
# rate limiter raised out of the way. Exits non-zero if a route saw errors or non-2xx responses,
# or if the server does not exit 0 on SIGTERM.
set -euo pipefail

seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-32}
warmup=${BENCH_WARMUP:-2}
routes=${BENCH_ROUTES:-/health /api/v1/status}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}

echo "==> building release binaries (target dir $CARGO_TARGET_DIR)"
(cd "$root" && cargo build --release -p recap -p recap-bench)
recap=$CARGO_TARGET_DIR/release/recap
bench=$CARGO_TARGET_DIR/release/recap-bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-bench.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

server_logs() {
    echo "--- server stderr (last 20 lines) ---" >&2
    tail -n 20 "$tmp/server.err" >&2 || true
}

# Started from the temp dir so no .env of the checkout is picked up; `exec` keeps $! = recap's pid.
echo "==> starting recap serve on a fresh database in $tmp"
(
    cd "$tmp"
    export DATABASE_URL="sqlite://$tmp/bench.db"
    export RATE_LIMIT_REQUESTS=1000000000
    export LOGIN_RATE_LIMIT_PER_IP=1000000 LOGIN_RATE_LIMIT_PER_ACCOUNT=1000000
    export LOG_LEVEL=${LOG_LEVEL:-warn}
    exec "$recap" serve --host 127.0.0.1 --port 0
) >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

base=
for _ in $(seq 1 300); do
    if line=$(grep -m1 '^listening on ' "$tmp/server.out"); then
        base=${line#listening on }
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: recap serve exited before listening" >&2
        server_logs
        exit 1
    fi
    sleep 0.1
done
if [[ -z $base ]]; then
    echo "error: no 'listening on' line from recap serve after 30 s" >&2
    server_logs
    exit 1
fi
port=${base##*:}
echo "    pid $server_pid, $base (port $port)"

rss_kb() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$server_pid/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb / 1024 }'; }
# Extracts a top-level scalar from recap-bench's one-line JSON (keys are unique at the top level
# when a single --url is given).
field() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -n1 | cut -d: -f2- | tr -d '"'; }

# A couple of requests per route so lazy state (DB pool, instance id, metrics) exists.
for route in $routes; do
    "$bench" --url "$base$route" --connections 1 --requests 2 --warmup 0 --seconds 5 --json >/dev/null
done
sleep 1
idle_rss=$(rss_kb VmRSS)
echo "    idle RSS $(mb "$idle_rss")"

# An account, its login latency (sequential, as a user signs in), and an API key, for the
# authenticated routes below.
echo "==> signing up a user, timing 20 logins, creating an API key"
creds='{"email":"bench@example.com","password":"correct-horse-42"}'
curl -fsS -o /dev/null -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/register"
login_times=()
for _ in $(seq 1 20); do
    login_times+=("$(curl -fsS -o "$tmp/login.json" -w '%{time_total}' -H 'content-type: application/json' -d "$creds" "$base/api/v1/auth/login")")
done
login_p50=$(printf '%s\n' "${login_times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }')
echo "    login p50 ${login_p50} ms (argon2id verify in a release build)"
access_token=$(grep -o '"access_token":"[^"]*"' "$tmp/login.json" | cut -d'"' -f4)
api_key=$(curl -fsS -H "authorization: Bearer $access_token" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "$base/api/v1/api-keys/" | grep -o '"full_key":"[^"]*"' | cut -d'"' -f4)

# label|path|authorization header (empty for none)
targets=()
for route in $routes; do targets+=("$route|$route|"); done
targets+=("whoami (JWT)|/api/v1/auth/whoami|Bearer $access_token")
targets+=("whoami (API key)|/api/v1/auth/whoami|Bearer $api_key")

failed=0
declare -a summary_rows=()
for target in "${targets[@]}"; do
    IFS='|' read -r route path auth <<<"$target"
    headers=()
    [[ -n $auth ]] && headers=(--header "authorization: $auth")
    echo
    echo "==> $route: $connections connections, ${seconds} s after ${warmup} s warm-up"
    json=$("$bench" --url "$base$path" "${headers[@]}" --connections "$connections" --seconds "$seconds" --warmup "$warmup" --json) || {
        echo "error: recap-bench failed for $route" >&2
        failed=1
        continue
    }
    requests=$(field "$json" requests)
    rps=$(field "$json" rps)
    p50=$(field "$json" p50_ms)
    p90=$(field "$json" p90_ms)
    p99=$(field "$json" p99_ms)
    max=$(field "$json" max_ms)
    non2xx=$(field "$json" non_2xx)
    errors=$(field "$json" errors)
    duration=$(field "$json" duration_s)
    echo "    requests  $requests in ${duration} s = $rps req/s"
    echo "    latency   p50 ${p50} ms  p90 ${p90} ms  p99 ${p99} ms  max ${max} ms"
    echo "    non-2xx   $non2xx   errors $errors"
    if [[ $non2xx != 0 || $errors != 0 ]]; then
        echo "    WARNING: $route had $non2xx non-2xx responses and $errors errors: $json" >&2
        failed=1
    fi
    summary_rows+=("$(printf '%-18s %10s %9s %9s %9s %9s %8s %7s' "$route" "$rps" "$p50" "$p90" "$p99" "$max" "$non2xx" "$errors")")
done

loaded_rss=$(rss_kb VmRSS)
peak_rss=$(rss_kb VmHWM)

echo
echo "==> stopping the server (SIGTERM)"
kill -TERM "$server_pid"
# A child that has exited stays a zombie (and passes `kill -0`) until waited for; check its state.
for _ in $(seq 1 150); do
    state=$(awk '{ print $3 }' "/proc/$server_pid/stat" 2>/dev/null || echo gone)
    [[ $state == Z || $state == gone ]] && break
    sleep 0.1
done
if [[ $state != Z && $state != gone ]]; then
    echo "error: recap serve still running 15 s after SIGTERM; killing it" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
fi
exit_code=0
wait "$server_pid" || exit_code=$?
server_pid=
if [[ $exit_code != 0 ]]; then
    echo "error: recap serve exited with $exit_code after SIGTERM" >&2
    server_logs
    failed=1
fi

echo
echo "================ recap benchmark summary ================"
echo "host        $(nproc) CPUs, $(uname -sr); server and load generator share them"
echo "server      $("$recap" --version 2>/dev/null || echo recap), SQLite, LOG_LEVEL=${LOG_LEVEL:-warn}"
echo "load        $connections keep-alive connections, ${seconds} s per route after ${warmup} s warm-up"
printf '%-18s %10s %9s %9s %9s %9s %8s %7s\n' route req/s p50_ms p90_ms p99_ms max_ms non-2xx errors
for row in "${summary_rows[@]}"; do
    echo "$row"
done
echo "login       p50 ${login_p50} ms over 20 sequential logins"
echo "RSS         idle $(mb "$idle_rss"), after load $(mb "$loaded_rss"), peak $(mb "$peak_rss")"
echo "shutdown    SIGTERM -> exit code $exit_code"
echo "========================================================="
exit "$failed"
