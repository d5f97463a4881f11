#!/usr/bin/env bash
# Runs the fuzz targets (default: all) for SECONDS (default 600) each, one after the other.
# On stable Rust: cargo-fuzz needs nightly's -Z flags, which RUSTC_BOOTSTRAP=1 unlocks. No
# sanitizer: the code under test is safe Rust; panics and failed assertions are the findings.
# The corpus grows in fuzz/corpus/<target>; crashes land in fuzz/artifacts/<target>.
#   cargo install cargo-fuzz && fuzz/run.sh 600 [target...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_load ollama_ndjson anthropic_sse gemini_sse responses_sse inbound_relay inbound_requests)
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
    -dict="dicts/$t.dict" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 2>&1 | tee "$t.log" | grep -E "^(Done|stat::|==|SUMMARY)|panicked|crash-" || true
done
