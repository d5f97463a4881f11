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
cargo run --release -p bench -- all \
    --variant "before this round ($before), 1 worker=$v/openclawd-$before,TOKIO_WORKER_THREADS=1" \
    --variant "2 workers=target/release/openclawd,TOKIO_WORKER_THREADS=2" \
    --variant "mimalloc, 1 worker=$v/openclawd-mimalloc,TOKIO_WORKER_THREADS=1" \
    "$@"
# Section 9, same run: instructions per request under callgrind (needs valgrind), placed
# before the Reproduce section.
if command -v valgrind >/dev/null; then
    section=$(mktemp)
    scripts/bench-instructions.py --api chat --api ollama --api messages --markdown \
        "before this round ($before)=$v/openclawd-$before" "openclawd=target/release/openclawd" >"$section"
    python3 - "$section" <<'PY'
import sys
section = open(sys.argv[1]).read()
doc = open("BENCHMARKS.md").read()
at = doc.find("## Reproduce")
doc = doc[:at] + section + doc[at:] if at >= 0 else doc + "\n" + section
open("BENCHMARKS.md", "w").write(doc)
PY
    rm -f "$section"
else
    echo "valgrind missing: section 9 (instructions per request) skipped" >&2
fi
