#!/bin/sh
# Installs the real npm CLI clients tests/npm_clients.rs drives through openclawd: Claude Code
# (`@anthropic-ai/claude-code`, /v1/messages) and Codex CLI (`@openai/codex`, /v1/responses), into
# a local prefix under target/ (never globally). Versions are pinned to the ones the tests were
# written against; CLAUDE_CODE_VERSION / CODEX_VERSION override them. Idempotent.
# Usage: scripts/install-npm-clients.sh [PREFIX]   (default: target/npm-clients)
#   then: cargo test --test npm_clients -- --ignored
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-"$here/target/npm-clients"}
claude=${CLAUDE_CODE_VERSION:-2.1.197}
codex=${CODEX_VERSION:-0.171.0}
command -v npm >/dev/null || { echo "npm is not installed (Node.js >= 18 needed)" >&2; exit 1; }
mkdir -p "$prefix"
# Both packages ship their native binary as an optional dependency for the platform; Claude
# Code's postinstall only copies it over its placeholder, which npm already links.
npm install --prefix "$prefix" --no-audit --no-fund --no-save \
    "@anthropic-ai/claude-code@$claude" "@openai/codex@$codex"
# A throwaway HOME: neither version check may write into the user's ~/.claude or ~/.codex.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "claude: $(HOME="$scratch" "$prefix/node_modules/.bin/claude" --version)"
echo "codex:  $(HOME="$scratch" "$prefix/node_modules/.bin/codex" --version 2>/dev/null)"
