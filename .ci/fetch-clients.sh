#!/usr/bin/env bash
# Installs the pinned client CLIs from the npm registry into the cache folder (once): Claude
# Code and Codex CLI. Prints the path of the `claude` binary, then on the last line the path of
# the `codex` binary, for the client tests:
#   out="$(.ci/fetch-clients.sh)"; HX_TEST_CLAUDE="$(sed -n 1p <<<"$out")"; HX_TEST_CODEX="$(tail -n1 <<<"$out")"
set -euo pipefail
CACHE_ROOT="${HX_CACHE_DIR:-$HOME/.cache/hx-gateway}/clients"

# install NAME PACKAGE VERSION BIN: npm-installs PACKAGE@VERSION under the cache unless BIN
# there already reports VERSION; prints BIN's path.
install() {
  local dir="$CACHE_ROOT/$1-$3" bin
  bin="$dir/node_modules/.bin/$4"
  if [[ ! -x "$bin" ]] || ! "$bin" --version 2>/dev/null | grep -q "$3"; then
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "$2@$3" >&2
  fi
  "$bin" --version >&2
  echo "$bin"
}

install claude-code @anthropic-ai/claude-code 2.1.332 claude
install codex @openai/codex 0.171.0 codex
