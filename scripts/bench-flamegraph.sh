#!/bin/sh
# A CPU flamegraph of openclawd at concurrency 64 (issue 18), written beside BENCHMARKS.md:
# `bench cpu` drives openclawd → nginx and → mock at concurrency 64 while `perf record` samples
# openclawd; inferno folds and renders the stacks.
# Needs: scripts/bench-nginx-install.sh (nginx, perf), `cargo install inferno`, a release build.
# Usage: scripts/bench-flamegraph.sh [OUT.svg]   (default: docs/flamegraph-c64.svg)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$here/docs/flamegraph-c64.svg"}
bin="$here/target/release"
PATH="$here/target/tools/bin:$HOME/.cargo/bin:$PATH"
command -v inferno-flamegraph >/dev/null || { echo "inferno missing: cargo install inferno --root target/tools" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/bench" cpu --variant "openclawd=$bin/openclawd" --levels 64 --rounds 4 --secs 2 --no-wrk --no-profile >"$tmp/bench.md" 2>"$tmp/bench.err" &
bench=$!
pid=""
for _ in $(seq 1 100); do
    pid=$(pgrep -P "$bench" -x openclawd || true)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "openclawd did not start; bench said:" >&2; cat "$tmp/bench.err" >&2; exit 1; }
sleep 2   # past start-up and the warm-up
# DWARF unwinding: release builds have no frame pointers.
perf record -F 499 --call-graph dwarf,8192 -p "$pid" -o "$tmp/perf.data" -- sleep 6 2>"$tmp/perf.err"
wait "$bench"
perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf >"$tmp/folded"
inferno-flamegraph --title "openclawd at concurrency 64 (→ nginx and → mock), $(date -u '+%Y-%m-%d %H:%M') UTC" <"$tmp/folded" >"$out"
echo "wrote $out ($(wc -l <"$tmp/folded") stacks); the load it ran under:"
sed -n '/concurrency 64/,/^$/p' "$tmp/bench.md"
