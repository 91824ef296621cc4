#!/usr/bin/env bash
# Benchmarks recap-git's history scan against `git log --numstat` on the same repository.
#
#   bench/git-scan.sh                 # generates a 6,000-commit repository (bench/git-history.py)
#   bench/git-scan.sh /path/to/repo   # uses an existing repository (its HEAD, or $BENCH_REF)
#   COMMITS=10000 RUNS=5 bench/git-scan.sh
#
# Environment:
#   COMMITS           commits to generate when no repository is given (default 6000, at least 5000)
#   RUNS              timed runs of each side, interleaved; the best wall time is reported (default 3)
#   BENCH_REF         ref to scan (default: HEAD of the repository)
#   SCAN_ARGS         extra arguments for the scan example (e.g. "--threads 1")
#   CARGO_TARGET_DIR  where cargo builds (default $HOME/.cache/recap-target)
#
# The reference is `git log --numstat --no-renames --diff-merges=first-parent --no-textconv`: every
# commit reachable from the ref, merges diffed against their first parent, which is exactly what
# the scan computes. (`--first-parent -m` would also restrict the walk to first parents.)
# Both sides' numbers are compared commit by commit before timing; the script exits non-zero on a
# mismatch. Wall time and peak RSS come from /usr/bin/time; the scan also reports its own VmHWM.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/recap-target}
commits=${COMMITS:-6000}
runs=${RUNS:-3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/recap-git-scan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "==> building the scan example (release, target dir $CARGO_TARGET_DIR)"
(cd "$root" && cargo build --release -q -p recap-git --example scan && cargo build --release -q -p recap)
scan=$CARGO_TARGET_DIR/release/examples/scan
recap=$CARGO_TARGET_DIR/release/recap

if [[ $# -ge 1 ]]; then
    repo=$(cd "$1" && pwd)
    echo "==> using $repo"
else
    repo=$tmp/repo
    echo "==> generating a $commits-commit repository in $repo"
    git init -q -b main "$repo"
    python3 "$root/bench/git-history.py" "$commits" | git -C "$repo" fast-import --quiet
    git -C "$repo" -c gc.auto=0 repack -a -d -q   # one pack with delta chains, like a clone
fi
ref=${BENCH_REF:-HEAD}
tip=$(git -C "$repo" rev-parse --verify "$ref^{commit}")
n=$(git -C "$repo" rev-list --count "$tip")
pack=$(du -sh "$repo/$(git -C "$repo" rev-parse --git-dir | sed "s|^$repo/||")/objects" 2>/dev/null | cut -f1 || echo "?")
echo "    $n commits reachable from $ref ($tip), objects: $pack"

git_log() {
    git -C "$repo" log --numstat --no-renames --diff-merges=first-parent --no-textconv --format='@%H' "$tip"
}

echo "==> checking that the numbers agree, commit by commit"
git_log | awk '
    /^@/ { if (h != "") print h, a, d, f; h = substr($0, 2); a = 0; d = 0; f = 0; next }
    NF == 0 { next }
    { f++; if ($1 != "-") { a += $1; d += $2 } }
    END { if (h != "") print h, a, d, f }' | sort > "$tmp/git.txt"
# shellcheck disable=SC2086
"$scan" "$repo" --ref "$tip" --per-commit ${SCAN_ARGS:-} 2> "$tmp/scan.err" | sort > "$tmp/scan.txt"
if ! diff -q "$tmp/git.txt" "$tmp/scan.txt" > /dev/null; then
    echo "MISMATCH: $(diff "$tmp/git.txt" "$tmp/scan.txt" | grep -c '^>') commits differ, e.g.:" >&2
    diff "$tmp/git.txt" "$tmp/scan.txt" | head -6 >&2
    exit 1
fi
echo "    identical: $(wc -l < "$tmp/git.txt") commits, $(awk '{a+=$2; d+=$3; f+=$4} END {print "+" a " -" d ", " f " files"}' "$tmp/git.txt")"

best_git=; best_scan=; best_push=; rss_git=0; rss_scan=0; rss_push=0
for i in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$tmp/t" bash -c "$(declare -f git_log); repo='$repo' tip='$tip' git_log > /dev/null"
    read -r secs kb < "$tmp/t"
    echo "    run $i  git log --numstat: ${secs}s  peak RSS $((kb / 1024)) MB"
    if [[ -z $best_git ]] || awk "BEGIN {exit !($secs < $best_git)}"; then best_git=$secs; fi
    (( kb > rss_git )) && rss_git=$kb
    # shellcheck disable=SC2086
    /usr/bin/time -f '%e %M' -o "$tmp/t" "$scan" "$repo" --ref "$tip" ${SCAN_ARGS:-} 2> "$tmp/scan.err"
    read -r secs kb < "$tmp/t"
    echo "    run $i  recap-git scan:    ${secs}s  peak RSS $((kb / 1024)) MB"
    if [[ -z $best_scan ]] || awk "BEGIN {exit !($secs < $best_scan)}"; then best_scan=$secs; fi
    (( kb > rss_scan )) && rss_scan=$kb
    # What the acceptance names: the client's own command, reading the history exactly as `sync` does.
    /usr/bin/time -f '%e %M' -o "$tmp/t" "$recap" push scan "$repo" --branch "$tip" > "$tmp/push.out"
    read -r secs kb < "$tmp/t"
    echo "    run $i  recap push scan:   ${secs}s  peak RSS $((kb / 1024)) MB  ($(cut -d'(' -f1 "$tmp/push.out" | sed 's/.*: //'))"
    if [[ -z $best_push ]] || awk "BEGIN {exit !($secs < $best_push)}"; then best_push=$secs; fi
    (( kb > rss_push )) && rss_push=$kb
done
echo "==> scan's own report (last run):"
sed 's/^/    /' "$tmp/scan.err"
echo "==> result over $runs runs (best wall time, highest peak RSS; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '    %-34s %8ss %6s MB\n' "git log --numstat --no-renames" "$best_git" "$((rss_git / 1024))"
printf '    %-34s %8ss %6s MB\n' "recap-git scan (example)" "$best_scan" "$((rss_scan / 1024))"
printf '    %-34s %8ss %6s MB\n' "recap push scan" "$best_push" "$((rss_push / 1024))"
awk "BEGIN {printf \"    scan / git = %.2f, push scan / git = %.2f\n\", $best_scan / $best_git, $best_push / $best_git}"
