#!/usr/bin/env bash
# Installs the pinned Claude Code CLI from the npm registry into the cache folder (once) and
# prints the path of its `claude` binary on the last line, for the client tests:
#   export HX_TEST_CLAUDE="$(.ci/fetch-clients.sh | tail -n1)"
set -euo pipefail
VERSION="2.1.332"
CACHE="${HX_CACHE_DIR:-$HOME/.cache/hx-gateway}/clients/claude-code-$VERSION"
BIN="$CACHE/node_modules/.bin/claude"
if [[ ! -x "$BIN" ]] || ! "$BIN" --version 2>/dev/null | grep -q "^$VERSION "; then
  mkdir -p "$CACHE"
  npm install --silent --no-audit --no-fund --prefix "$CACHE" "@anthropic-ai/claude-code@$VERSION" >&2
fi
"$BIN" --version >&2
echo "$BIN"
