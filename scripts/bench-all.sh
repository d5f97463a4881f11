#!/bin/sh
# Regenerates BENCHMARKS.md (issue 18): builds openclawd as it ships (jemalloc, one worker) and
# the variants scenario 7 compares it with, each differing in one thing, then runs every scenario.
# Usage: scripts/bench-all.sh [extra `bench all` flags, e.g. --no-litellm]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
v=target/variants
mkdir -p "$v"
# Built once (delete target/variants to rebuild); each run sets the worker count explicitly.
# glibc malloc (the allocator before issue 18)
if [ ! -x "$v/openclawd-glibc" ]; then
    cargo build --release -p openclawd --bin openclawd --no-default-features
    cp target/release/openclawd "$v/openclawd-glibc"
fi
if [ ! -x "$v/openclawd-mimalloc" ]; then
    cargo build --release -p openclawd --bin openclawd --no-default-features --features mimalloc
    cp target/release/openclawd "$v/openclawd-mimalloc"
fi
# `bench all` rebuilds target/release/openclawd with the default features first.
exec cargo run --release -p bench -- all \
    --variant "glibc, 2 workers (before issue 18)=$v/openclawd-glibc,TOKIO_WORKER_THREADS=2" \
    --variant "glibc, 1 worker=$v/openclawd-glibc,TOKIO_WORKER_THREADS=1" \
    --variant "jemalloc, 2 workers=target/release/openclawd,TOKIO_WORKER_THREADS=2" \
    --variant "mimalloc, 1 worker=$v/openclawd-mimalloc,TOKIO_WORKER_THREADS=1" \
    "$@"
