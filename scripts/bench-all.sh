#!/bin/sh
# Regenerates BENCHMARKS.md (issue 18): builds openclawd as it ships (jemalloc, one worker) and
# the variants scenario 7 compares it with, each differing in one thing, then runs every scenario.
# Usage: scripts/bench-all.sh [extra `bench all` flags, e.g. --no-litellm]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
v=target/variants
mkdir -p "$v"
# The build before this round's cuts (main at the end of round 19), built once from git into
# target/variants (delete it to rebuild). It shares target/'s dependencies, so only openclawd
# itself is compiled.
before=38366aa
if [ ! -x "$v/openclawd-$before" ]; then
    src=$(mktemp -d)
    git worktree add --detach "$src" "$before" >/dev/null
    (cd "$src" && CARGO_TARGET_DIR="$here/target" cargo build --release -p openclawd --bin openclawd)
    cp target/release/openclawd "$v/openclawd-$before"
    git worktree remove --force "$src"
fi
# The same source with mimalloc instead of jemalloc (rebuilt every run: it must match HEAD).
cargo build --release -p openclawd --bin openclawd --no-default-features --features mimalloc
cp target/release/openclawd "$v/openclawd-mimalloc"
# `bench all` rebuilds target/release/openclawd with the default features first.
exec cargo run --release -p bench -- all \
    --variant "before this round ($before), 1 worker=$v/openclawd-$before,TOKIO_WORKER_THREADS=1" \
    --variant "2 workers=target/release/openclawd,TOKIO_WORKER_THREADS=2" \
    --variant "mimalloc, 1 worker=$v/openclawd-mimalloc,TOKIO_WORKER_THREADS=1" \
    "$@"
