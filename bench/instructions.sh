#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind): a number that does not move with
# this VM's noise (throughput varies by ±15% between identical runs here), so two builds of HX
# Gateway can be compared reliably. User-space only: the kernel's share (system calls, context
# switches) is not counted; bench/run.sh measures the whole.
#
#   bench/instructions.sh [HX_BINARY]
#
# Starts the mock upstream and HX Gateway under callgrind (the benchmark's config: one
# openai/ deployment on the mock, the master key, SQLite spend log, info-level access log),
# warms up with 200 requests, then counts the instructions of every thread of the gateway
# over INSTR_REQUESTS requests (default 2000, sent at 200/s over 16 connections by
# examples/loadgen.rs) and prints the total, the count per request and the top functions
# (inclusive). Needs valgrind (Debian package) and the binaries built as run.sh builds them
# (BENCH_PROFILE, CARGO_TARGET_DIR as there; the `profiling` profile keeps symbols).
# INSTR_OUT=FILE keeps the callgrind profile. INSTR_API=messages measures /v1/messages instead,
# INSTR_API=responses /v1/responses bridged onto the mock's chat (store: false, as Codex sends),
# INSTR_API=responses-stored the same with OpenAI's default store: true.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${BENCH_PROFILE:-profiling}"
HX="${1:-$TARGET_DIR/$PROFILE/hx-gateway}"
MOCK="$TARGET_DIR/$PROFILE/examples/mock_upstream"
LOADGEN="$TARGET_DIR/$PROFILE/examples/loadgen"
REQUESTS="${INSTR_REQUESTS:-2000}"
BASE="${BENCH_PORT_BASE:-18300}"
MOCK_PORT=$((BASE + 1))
HX_PORT=$((BASE + 40))

for b in "$HX" "$MOCK" "$LOADGEN"; do [[ -x "$b" ]] || { echo "missing $b (build it as bench/run.sh does)" >&2; exit 1; }; done
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

TMP="$(mktemp -d /tmp/hx-instr.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

MOCK_THREADS=2 "$MOCK" "$MOCK_PORT" >/dev/null 2>"$TMP/mock.log" &
PIDS+=($!)
cat >"$TMP/hx.yaml" <<YAML
model_list:
  - model_name: bench-gpt
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
YAML
KEY="sk-bench-master-$(date +%s)"
mkdir -p "$TMP/data"
# Instrumentation off until the warm-up is over (start-up and first connections not counted).
env LITELLM_MASTER_KEY="$KEY" HX_DATA_DIR="$TMP/data" valgrind --tool=callgrind \
  --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" \
  "$HX" --config "$TMP/hx.yaml" --host 127.0.0.1 --port "$HX_PORT" --num_workers 2 \
  >/dev/null 2>"$TMP/hx.log" &
HX_PID=$!
PIDS+=("$HX_PID")
ready=0
for _ in $(seq 600); do
  if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HX_PORT/health/readiness" || true)" == 200 ]]; then ready=1; break; fi
  sleep 0.1
done
((ready)) || { echo "HX Gateway did not become ready: $(tail -5 "$TMP/hx.log")" >&2; exit 1; }

# INSTR_API=messages sends the same conversation to /v1/messages in Anthropic's shape, which the
# gateway translates for the OpenAI-wire mock and translates back (bench/README.md, #17);
# INSTR_API=responses as a Responses request, bridged the same way (#18).
case "${INSTR_API:-chat}" in
  chat)
    BODY='{"model":"bench-gpt","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
    URL="http://127.0.0.1:$HX_PORT/v1/chat/completions" ;;
  messages)
    BODY='{"model":"bench-gpt","system":"You are a helpful assistant.","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
    URL="http://127.0.0.1:$HX_PORT/v1/messages" ;;
  responses)
    BODY='{"model":"bench-gpt","instructions":"You are a helpful assistant.","input":"Say hello in one short sentence.","max_output_tokens":32,"store":false}'
    URL="http://127.0.0.1:$HX_PORT/v1/responses" ;;
  responses-stored)
    BODY='{"model":"bench-gpt","instructions":"You are a helpful assistant.","input":"Say hello in one short sentence.","max_output_tokens":32}'
    URL="http://127.0.0.1:$HX_PORT/v1/responses" ;;
  *) echo "INSTR_API is chat, messages, responses or responses-stored" >&2; exit 1 ;;
esac
load() { # load SECONDS
  "$LOADGEN" --url "$URL" --rate 200 --duration "$1" --warmup 0 --connections 16 \
    --body "$BODY" --header "authorization: Bearer $KEY" 2>&1 | grep '^RESULT'
}
load 1 >/dev/null
callgrind_control -i on "$HX_PID" >/dev/null
result="$(load $((REQUESTS / 200)))"
callgrind_control -i off "$HX_PID" >/dev/null
echo "$result" | grep -q " ok=$REQUESTS " || { echo "not every request succeeded: $result" >&2; exit 1; }
# SIGTERM: the gateway drains, writes its spend backlog, and callgrind writes its profile.
kill "$HX_PID"
wait "$HX_PID" 2>/dev/null || true

# INSTR_OUT=FILE keeps the profile for callgrind_annotate / kcachegrind.
[[ -n "${INSTR_OUT:-}" ]] && cp "$TMP/callgrind.out" "$INSTR_OUT"
total="$(callgrind_annotate "$TMP/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')"
echo "RESULT instructions=$total requests=$REQUESTS per_request=$((total / REQUESTS))"
echo "top functions (inclusive, instructions per request):"
callgrind_annotate --inclusive=yes "$TMP/callgrind.out" 2>/dev/null |
  sed -n '/file:function/,$p' | grep -E 'hx_gateway::|tracing_subscriber::fmt::Subscriber' |
  grep -v drop_in_place | sed -E 's|^ *([0-9,]+) \([ 0-9.]+%\) +[^:]*:([^ ]+).*|\1 \2|' |
  awk -v n="$REQUESTS" '{ gsub(",", "", $1); if (!seen[$2]++ && $1 / n >= 500) printf "  %8d  %s\n", $1 / n, $2 }' |
  sort -rn | head -25
