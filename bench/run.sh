#!/usr/bin/env bash
# HX Gateway benchmark, one command: bench/run.sh
#
# In one run, against the same fast mock upstream (examples/mock_upstream.rs):
#   (a) direct      the mock itself (the floor)
#   (b) nginx       nginx proxy_pass in front of the mock (the reference ideal proxy)
#   (b2) floor      a bare hyper proxy (examples/floor_proxy.rs) built like HX Gateway's server
#                   (one event loop per core): what the Rust stack itself costs, without any
#                   of the gateway's work
#   (c) hx          HX Gateway in front of the mock (one openai/ deployment)
#   (d) hx-group    HX Gateway, a model group of two deployments (two mock ports): routing cost
# and, when the feature answers (else skipped with a message), each against (c):
#   (e) hx-vkey     a virtual key (POST /key/generate) instead of the master key
#   (f) hx-ratelimit  per-key rate limits on, counters in Redis (REDIS_URL), very high rpm_limit
#   (g) hx-cache    response cache on (cache_params.type local), the same request repeated
# and streaming (issue 17), at a fixed low rate (open loop, examples/loadgen.rs --first-event):
#   (s1) stream-direct    streamed chat straight to the mock: the upstream's own time to first event
#   (s2) stream-hx        streamed /v1/chat/completions through HX Gateway
#   (s3) stream-messages  streamed /v1/messages through HX Gateway, translated (the deployment is
#                         the same openai/ one on the mock): Anthropic's events made from chunks
#   (s4) stream-responses streamed /v1/responses through HX Gateway, bridged onto the same chat
#                         deployment (issue 18, store: false as Codex sends): Responses events
# each timed to the first SSE event of the answer (its first `data:` line), p50 and p99, and to
# the stream's end; the gateway's added time to first event is (s2) or (s3) minus (s1). The mock
# pauses between chunks (BENCH_STREAM_GAP_US), as a model spaces its tokens, so the first event
# arrives well before the last.
# For each: requests/s, p50, p99 of non-streaming chat completions at 16 and 64 connections at
# full load (wrk, closed loop), and p50/p99 at a fixed rate well below saturation
# (examples/loadgen.rs, open loop) so the overhead is not queueing. Also HX Gateway's peak RSS
# (VmHWM after its runs) and its time from exec to the first 200 on /health/readiness
# (examples/ready_time.rs, median of 5). Results: stdout and bench/results.md.
#
# Knobs (environment): BENCH_DURATION (s per measurement, 10), BENCH_WARMUP (s, 3),
# BENCH_RATE (fixed rate, 2000), BENCH_WRK_THREADS (2), BENCH_SKIP_BUILD=1 (use built
# binaries), BENCH_PROFILE (cargo profile, release; `profiling` builds in minutes and keeps
# symbols for perf), BENCH_ONLY="direct nginx floor hx hx-group hx-vkey hx-ratelimit hx-cache
# stream-direct stream-hx stream-messages stream-responses" (subset), BENCH_STREAM_RATE (the streaming runs'
# fixed rate, 200 streams/s on 16 connections), BENCH_STREAM_GAP_US (the mock's pause between a
# stream's chunks in microseconds, 1000; 0 sends all chunks at once),
# BENCH_CPUS_LOAD / BENCH_CPUS_MOCK / BENCH_CPUS_TARGET (taskset CPU lists; empty = no pinning),
# REDIS_URL (for (f), default redis://127.0.0.1:6379), BENCH_PORT_BASE (18100).
#
# CPU layout. The machine has 2 cores and, at full load, three busy processes (load generator,
# proxy, mock). Splitting them by hand (say proxy on CPU 0, mock and wrk on CPU 1) leaves one
# core idle whenever its process waits on the other, and favours whichever target gets a whole
# core; the kernel scheduler spreads three busy processes over two cores better. So by default
# nothing is pinned, and every target sees the same layout: wrk with 2 threads, the mock with 2
# worker threads, nginx with 2 workers, HX Gateway with --num_workers 2. Set BENCH_CPUS_* to
# try a pinned layout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-3}"
RATE="${BENCH_RATE:-2000}"
WRK_THREADS="${BENCH_WRK_THREADS:-2}"
ONLY="${BENCH_ONLY:-direct nginx floor hx hx-group hx-vkey hx-ratelimit hx-cache stream-direct stream-hx stream-messages stream-responses}"
STREAM_RATE="${BENCH_STREAM_RATE:-200}"
STREAM_GAP_US="${BENCH_STREAM_GAP_US:-1000}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
BASE="${BENCH_PORT_BASE:-18100}"
MOCK_PORT=$((BASE + 1))
MOCK_PORT2=$((BASE + 2))
NGINX_PORT=$((BASE + 80))
FLOOR_PORT=$((BASE + 81))
HX_PORT=$((BASE + 40))
READY_PORT=$((BASE + 41))
HOOK_PORT=$((BASE + 42))
MASTER_KEY="sk-bench-master-$(date +%s)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

# --- tools: everything from Debian packages or crates.io ------------------------------------
need_pkgs=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_pkgs+=(nginx)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v taskset >/dev/null 2>&1 || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# --- build --------------------------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${BENCH_PROFILE:-release}"
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (profile $PROFILE; release's fat LTO is slow on 2 cores, run niced)"
  (cd "$ROOT" && nice -n 15 cargo build --profile "$PROFILE" --bin hx-gateway \
    --example mock_upstream --example loadgen --example ready_time --example floor_proxy)
fi
HX="$TARGET_DIR/$PROFILE/hx-gateway"
MOCK="$TARGET_DIR/$PROFILE/examples/mock_upstream"
LOADGEN="$TARGET_DIR/$PROFILE/examples/loadgen"
READY="$TARGET_DIR/$PROFILE/examples/ready_time"
FLOOR="$TARGET_DIR/$PROFILE/examples/floor_proxy"
for b in "$HX" "$MOCK" "$LOADGEN" "$READY" "$FLOOR"; do [[ -x "$b" ]] || die "missing $b (build failed?)"; done

# --- scratch space and process bookkeeping: only what this script started is stopped ------
TMP="$(mktemp -d /tmp/hx-bench.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${BENCH_KEEP_TMP:-0}" == 1 ]]; then log "scratch kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin() { # pin CPULIST CMD... : taskset when a CPU list is given
  local cpus="$1"; shift
  if [[ -n "$cpus" ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
spawn() { # spawn CPULIST CMD... &: exec, so that $! is the command's own PID (stoppable)
  local cpus="$1"; shift
  if [[ -n "$cpus" ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
wait_200() { # wait_200 URL [SECONDS]
  local url="$1" deadline=$((SECONDS + ${2:-20}))
  until [[ "$(http_code "$url")" == 200 ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}
stop() { # stop PID: TERM, wait for it, and forget it (so cleanup never signals a reused PID)
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

for p in "$MOCK_PORT" "$MOCK_PORT2" "$NGINX_PORT" "$FLOOR_PORT" "$HX_PORT" "$READY_PORT" "$HOOK_PORT"; do
  port_busy "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# --- the machine ------------------------------------------------------------------------
CPU_MODEL="$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)"
MEM_GB="$(awk '/^MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)"
MACHINE="$(nproc) cores, $CPU_MODEL, ${MEM_GB} GB RAM, $(uname -sr)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "machine: $MACHINE; load average $LOAD_BEFORE"

# --- the request: one body for wrk (post.lua reads BENCH_BODY) and the fixed-rate loadgen --
body_for() {
  printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}' "$1"
}
# The same conversation streamed: as chat (usage asked for, as clients do), and as Messages.
stream_chat_body() {
  printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"stream":true,"stream_options":{"include_usage":true}}' "$1"
}
stream_messages_body() {
  printf '{"model":"%s","system":"You are a helpful assistant.","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"stream":true}' "$1"
}
stream_responses_body() {
  printf '{"model":"%s","instructions":"You are a helpful assistant.","input":"Say hello in one short sentence.","max_output_tokens":32,"store":false,"stream":true}' "$1"
}

# --- results ----------------------------------------------------------------------------
declare -A R # R[run.metric] = value
RUNS=()      # in order measured
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | tail -1; }

# measure NAME URL MODEL KEY [CPUS]: warm-up, wrk at 16 and 64 connections, fixed rate.
measure() {
  local name="$1" url="$2" model="$3" key="$4" out line c
  local body; body="$(body_for "$model")"
  # Sanity: the target answers a chat completion before we time it.
  out="$(curl -s -w '\n%{http_code}' "$url" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' -d "$body" || true)"
  [[ "${out##*$'\n'}" == 200 && "$out" == *chat.completion* ]] ||
    die "$name: $url did not answer a chat completion: ${out:0:300}"
  log "$name: warm-up ${WARMUP}s"
  pin "${BENCH_CPUS_LOAD:-}" env BENCH_BODY="$body" BENCH_KEY="$key" \
    wrk -t"$WRK_THREADS" -c64 -d"${WARMUP}s" -s "$BENCH/post.lua" "$url" >/dev/null
  for c in 16 64; do
    out="$(pin "${BENCH_CPUS_LOAD:-}" env BENCH_BODY="$body" BENCH_KEY="$key" \
      wrk -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency -s "$BENCH/post.lua" "$url")"
    line="$(grep '^RESULT' <<<"$out")" || die "$name: no result from wrk: $out"
    R[$name.rps$c]="$(field rps "$line")"
    R[$name.p50_$c]="$(field p50_ms "$line")"
    R[$name.p99_$c]="$(field p99_ms "$line")"
    R[$name.bad$c]=$(($(field non2xx "$line") + $(field errors "$line")))
    log "$name: $c connections: ${R[$name.rps$c]} req/s, p50 ${R[$name.p50_$c]} ms, p99 ${R[$name.p99_$c]} ms, non-2xx/errors ${R[$name.bad$c]}"
  done
  out="$(pin "${BENCH_CPUS_LOAD:-}" "$LOADGEN" --url "$url" --rate "$RATE" --duration "$DURATION" \
    --warmup 2 --connections 16 --body "$body" --header "authorization: Bearer $key" 2>&1)" || true
  line="$(grep '^RESULT' <<<"$out")" || die "$name: no result from loadgen: $out"
  R[$name.fixed_p50]="$(field p50_ms "$line")"
  R[$name.fixed_p99]="$(field p99_ms "$line")"
  R[$name.fixed_rate]="$(field achieved "$line")"
  R[$name.badfixed]=$(($(field non2xx "$line") + $(field errors "$line")))
  log "$name: fixed ${RATE}/s: achieved ${R[$name.fixed_rate]}/s, p50 ${R[$name.fixed_p50]} ms, p99 ${R[$name.fixed_p99]} ms, non-2xx/errors ${R[$name.badfixed]}"
  RUNS+=("$name")
}

# measure_stream NAME URL KEY BODY EXPECT: streamed requests at the fixed STREAM_RATE, each
# timed to its answer's first event and to its end; EXPECT is what a whole stream contains.
STREAM_RUNS=()
measure_stream() {
  local name="$1" url="$2" key="$3" body="$4" expect="$5" out line
  out="$(curl -sN -w '\n%{http_code}' "$url" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' -d "$body" || true)"
  [[ "${out##*$'\n'}" == 200 && "$out" == *"$expect"* ]] ||
    die "$name: $url did not stream an answer with $expect: ${out:0:300}"
  log "$name: streamed, fixed ${STREAM_RATE}/s for ${DURATION}s after ${WARMUP}s"
  out="$(pin "${BENCH_CPUS_LOAD:-}" "$LOADGEN" --url "$url" --rate "$STREAM_RATE" \
    --duration "$DURATION" --warmup "$WARMUP" --connections 16 --body "$body" \
    --header "authorization: Bearer $key" --first-event --expect "$expect" 2>&1)" || true
  line="$(grep '^RESULT' <<<"$out")" || die "$name: no result from loadgen: $out"
  R[$name.first_p50]="$(field p50_ms "$line")"
  R[$name.first_p99]="$(field p99_ms "$line")"
  R[$name.total_p50]="$(field total_p50_ms "$line")"
  R[$name.total_p99]="$(field total_p99_ms "$line")"
  R[$name.rate]="$(field achieved "$line")"
  R[$name.bad]=$(($(field non2xx "$line") + $(field unexpected "$line") + $(field errors "$line")))
  log "$name: achieved ${R[$name.rate]}/s, first event p50 ${R[$name.first_p50]} ms, p99 ${R[$name.first_p99]} ms; whole stream p50 ${R[$name.total_p50]} ms; non-2xx/cut short/errors ${R[$name.bad]}"
  STREAM_RUNS+=("$name")
}

vmhwm_mb() { awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# --- HX Gateway configs: only mock-upstream models, nothing local ----------------------
hx_config() { # hx_config FILE [EXTRA_YAML]
  cat >"$1" <<EOF
# Benchmark config: every model forwards to the mock upstream; no local model.
model_list:
  - model_name: bench-gpt
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
  # (d) a group of two deployments: routing picks one per request.
  - model_name: bench-group
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-mock
  - model_name: bench-group
    litellm_params:
      model: openai/bench-gpt
      api_base: http://127.0.0.1:$MOCK_PORT2/v1
      api_key: sk-mock
router_settings:
  routing_strategy: simple-shuffle
${2:-}
EOF
}
# start_hx NAME PORT CONFIG [ENV=VALUE...]: starts HX Gateway in the background, sets HX_PID.
start_hx() {
  local name="$1" port="$2" config="$3"; shift 3
  mkdir -p "$TMP/data-$name"
  # Default log level (info: one access line per request), as deployed, into a file;
  # BENCH_HX_LOG sets RUST_LOG instead (e.g. warn) to see what the access log costs.
  local log_env=()
  [[ -n "${BENCH_HX_LOG:-}" ]] && log_env=(RUST_LOG="$BENCH_HX_LOG")
  spawn "${BENCH_CPUS_TARGET:-}" env LITELLM_MASTER_KEY="$MASTER_KEY" HX_DATA_DIR="$TMP/data-$name" \
    "${log_env[@]}" "$@" "$HX" --config "$config" --host 127.0.0.1 --port "$port" --num_workers 2 \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  HX_PID=$!
  PIDS+=("$HX_PID")
  wait_200 "http://127.0.0.1:$port/health/readiness" 30 ||
    die "$name: HX Gateway not ready; its log: $(tail -20 "$TMP/$name.log")"
}
# gen_key PORT JSON: a virtual key from /key/generate, or "" when the route is not there.
gen_key() {
  local code
  code="$(curl -s -o "$TMP/key.json" -w '%{http_code}' "http://127.0.0.1:$1/key/generate" \
    -H "Authorization: Bearer $MASTER_KEY" -H 'content-type: application/json' -d "$2" || true)"
  [[ "$code" == 200 ]] || { echo ""; return 0; }
  sed -n 's/.*"key"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$TMP/key.json" | head -1
}

HX_CONFIG="$TMP/hx.yaml"
hx_config "$HX_CONFIG"

# --- the mock upstream (two ports: the second deployment of the group) ---------------------
log "starting the mock upstream on $MOCK_PORT and $MOCK_PORT2"
spawn "${BENCH_CPUS_MOCK:-}" env MOCK_THREADS=2 MOCK_STREAM_GAP_US="$STREAM_GAP_US" \
  "$MOCK" "$MOCK_PORT" "$MOCK_PORT2" >/dev/null 2>"$TMP/mock.log" &
PIDS+=($!)
wait_200 "http://127.0.0.1:$MOCK_PORT/health" || die "mock upstream did not start: $(cat "$TMP/mock.log")"

# --- time to ready: exec -> first 200 on /health/readiness, 5 runs, median ---------------
READY_MS="?"
if want hx; then
  log "HX Gateway time to ready (5 runs)"
  mkdir -p "$TMP/data-ready"
  out="$(LITELLM_MASTER_KEY="$MASTER_KEY" HX_DATA_DIR="$TMP/data-ready" "$READY" \
    --url "http://127.0.0.1:$READY_PORT/health/readiness" --runs 5 -- \
    "$HX" --config "$HX_CONFIG" --host 127.0.0.1 --port "$READY_PORT" --num_workers 2 \
    2>"$TMP/ready.log")" || die "time to ready failed: $(tail -20 "$TMP/ready.log")"
  printf '%s\n' "$out" | grep -v '^RESULT' | sed 's/^/    /' >&2
  READY_MS="$(field median_ms "$(grep '^RESULT' <<<"$out")")"
  log "ready: median ${READY_MS} ms"
fi

# --- (a) direct ----------------------------------------------------------------------------
want direct && measure direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" bench-gpt none

# --- (b) nginx proxy_pass, keepalive to the upstream configured properly -------------------
if want nginx; then
  mkdir -p "$TMP/nginx/logs"
  user_line=""
  [[ "$(id -u)" == 0 ]] && user_line="user root;"
  cat >"$TMP/nginx/nginx.conf" <<EOF
$user_line
worker_processes 2;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 1000000;
  upstream mock {
    server 127.0.0.1:$MOCK_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  spawn "${BENCH_CPUS_TARGET:-}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
    -e "$TMP/nginx/logs/error.log" >/dev/null 2>"$TMP/nginx/logs/stderr.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_200 "http://127.0.0.1:$NGINX_PORT/health" || die "nginx did not start: $(cat "$TMP/nginx/logs/error.log" "$TMP/nginx/logs/stderr.log")"
  measure nginx "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" bench-gpt none
  stop "$NGINX_PID"
fi

# --- (b2) the floor: a bare hyper proxy, one event loop per core ------------------------
if want floor; then
  spawn "${BENCH_CPUS_TARGET:-}" env FLOOR_THREADS=2 "$FLOOR" "$FLOOR_PORT" "$MOCK_PORT" \
    >/dev/null 2>"$TMP/floor.log" &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  wait_200 "http://127.0.0.1:$FLOOR_PORT/health" || die "floor proxy did not start: $(cat "$TMP/floor.log")"
  measure floor "http://127.0.0.1:$FLOOR_PORT/v1/chat/completions" bench-gpt none
  stop "$FLOOR_PID"
fi

# --- (c) HX Gateway, (d) a group of two deployments: one process -------------------------
HX_RSS="?"
if want hx || want hx-group; then
  log "starting HX Gateway"
  start_hx hx "$HX_PORT" "$HX_CONFIG"
  HX_URL="http://127.0.0.1:$HX_PORT/v1/chat/completions"
  if want hx; then
    measure hx "$HX_URL" bench-gpt "$MASTER_KEY"
    R[hx.rss]="$(vmhwm_mb "$HX_PID")"
  fi
  if want hx-group; then
    measure hx-group "$HX_URL" bench-group "$MASTER_KEY"
    R[hx-group.rss]="$(vmhwm_mb "$HX_PID")"
  fi
  HX_RSS="$(vmhwm_mb "$HX_PID")"
  log "HX Gateway peak RSS (VmHWM) after its runs: $HX_RSS MB"
  stop "$HX_PID"
fi

# --- hooks: features from later issues, each run on its own gateway, reported against (c) --
SKIPPED=()
# (e) virtual key (issue 4): a cached virtual key should cost no more than the master key.
if want hx-vkey; then
  start_hx hx-vkey "$HOOK_PORT" "$HX_CONFIG"
  VKEY="$(gen_key "$HOOK_PORT" '{"models": ["bench-gpt"]}')"
  if [[ -n "$VKEY" ]]; then
    measure hx-vkey "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" bench-gpt "$VKEY"
    R[hx-vkey.rss]="$(vmhwm_mb "$HX_PID")"
  else
    SKIPPED+=("(e) hx-vkey: POST /key/generate did not answer 200 (virtual keys not in this build)")
  fi
  stop "$HX_PID"
fi
# (f) rate limiting on, counters in Redis (issue 5): a key with a very high rpm_limit.
if want hx-ratelimit; then
  redis_hostport="${REDIS_URL#redis://}"; redis_hostport="${redis_hostport##*@}"; redis_hostport="${redis_hostport%%/*}"
  if ! (exec 3<>"/dev/tcp/${redis_hostport%%:*}/${redis_hostport##*:}") 2>/dev/null; then
    SKIPPED+=("(f) hx-ratelimit: Redis not reachable at $REDIS_URL")
  else
    start_hx hx-ratelimit "$HOOK_PORT" "$HX_CONFIG" REDIS_URL="$REDIS_URL"
    RKEY="$(gen_key "$HOOK_PORT" '{"models": ["bench-gpt"], "rpm_limit": 1000000000, "tpm_limit": 1000000000000}')"
    if [[ -z "$RKEY" ]]; then
      SKIPPED+=("(f) hx-ratelimit: POST /key/generate did not answer 200 (keys not in this build)")
    elif ! curl -s -D - -o /dev/null "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" \
      -H "Authorization: Bearer $RKEY" -H 'content-type: application/json' -d "$(body_for bench-gpt)" |
      grep -qi '^x-ratelimit-limit-requests'; then
      SKIPPED+=("(f) hx-ratelimit: no x-ratelimit-limit-requests header (rate limits not in this build)")
    else
      measure hx-ratelimit "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" bench-gpt "$RKEY"
      R[hx-ratelimit.rss]="$(vmhwm_mb "$HX_PID")"
    fi
    stop "$HX_PID"
  fi
fi
# (g) cache hits (issue 5): local response cache, the same request repeated.
if want hx-cache; then
  hx_config "$TMP/hx-cache.yaml" "litellm_settings:
  cache: true
  cache_params:
    type: local"
  start_hx hx-cache "$HOOK_PORT" "$TMP/hx-cache.yaml"
  cache_probe() {
    curl -s -D - -o /dev/null "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" \
      -H "Authorization: Bearer $MASTER_KEY" -H 'content-type: application/json' -d "$(body_for bench-gpt)"
  }
  cache_probe >/dev/null
  if cache_probe | grep -qi '^x-litellm-cache-key'; then
    measure hx-cache "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" bench-gpt "$MASTER_KEY"
    R[hx-cache.rss]="$(vmhwm_mb "$HX_PID")"
  else
    SKIPPED+=("(g) hx-cache: no x-litellm-cache-key header on a repeated request (cache not in this build)")
  fi
  stop "$HX_PID"
fi
# --- streaming (issue 17): time to the first event, direct and through HX Gateway -----------
want stream-direct && measure_stream stream-direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" \
  none "$(stream_chat_body bench-gpt)" "data: [DONE]"
if want stream-hx || want stream-messages || want stream-responses; then
  start_hx hx-stream "$HOOK_PORT" "$HX_CONFIG"
  want stream-hx && measure_stream stream-hx "http://127.0.0.1:$HOOK_PORT/v1/chat/completions" \
    "$MASTER_KEY" "$(stream_chat_body bench-gpt)" "data: [DONE]"
  want stream-messages && measure_stream stream-messages "http://127.0.0.1:$HOOK_PORT/v1/messages" \
    "$MASTER_KEY" "$(stream_messages_body bench-gpt)" '"type":"message_stop"'
  want stream-responses && measure_stream stream-responses "http://127.0.0.1:$HOOK_PORT/v1/responses" \
    "$MASTER_KEY" "$(stream_responses_body bench-gpt)" 'event: response.completed'
  stop "$HX_PID"
fi

# Embeddings / RAG: placeholder. When /v1/embeddings and the RAG routes land, add runs here
# (an openai/ embedding deployment on the mock; a RAG query on a small collection).

# --- report ---------------------------------------------------------------------------------
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
v() { echo "${R[$1]:-}"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
desc() {
  case "$1" in
    direct) echo "(a) direct to the mock" ;;
    nginx) echo "(b) nginx proxy_pass" ;;
    floor) echo "(b2) bare hyper proxy (floor)" ;;
    hx) echo "(c) HX Gateway" ;;
    hx-group) echo "(d) HX Gateway, group of 2" ;;
    hx-vkey) echo "(e) HX, virtual key" ;;
    hx-ratelimit) echo "(f) HX, rate limits (Redis)" ;;
    hx-cache) echo "(g) HX, cache hits" ;;
    stream-direct) echo "(s1) streamed chat, direct to the mock" ;;
    stream-hx) echo "(s2) streamed chat, HX Gateway" ;;
    stream-messages) echo "(s3) streamed Messages, HX Gateway (translated)" ;;
    stream-responses) echo "(s4) streamed Responses, HX Gateway (bridged)" ;;
    *) echo "$1" ;;
  esac
}
report() {
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on: $MACHINE."
  echo "Load average before/after: $LOAD_BEFORE / $LOAD_AFTER. ${DURATION} s per measurement after a ${WARMUP} s warm-up."
  local r rss flag
  if ((${#RUNS[@]})); then
    echo "Full load: wrk -t$WRK_THREADS, closed loop; fixed rate: examples/loadgen.rs, open loop, 16 connections."
    echo
    echo "| run | req/s @16 | p50 @16 | p99 @16 | req/s @64 | p50 @64 | p99 @64 | p50 @${RATE}/s | p99 @${RATE}/s | peak RSS |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${RUNS[@]}"; do
      rss="$(v "$r.rss")"; [[ -n "$rss" ]] && rss="$rss MB" || rss="-"
      flag=""
      (($(v "$r.bad16") + $(v "$r.bad64") + $(v "$r.badfixed") > 0)) &&
        flag=" ⚠ $(( $(v "$r.bad16") + $(v "$r.bad64") + $(v "$r.badfixed") )) errors"
      printf '| %s%s | %.0f | %.3f ms | %.3f ms | %.0f | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %s |\n' \
        "$(desc "$r")" "$flag" "$(v "$r.rps16")" "$(v "$r.p50_16")" "$(v "$r.p99_16")" \
        "$(v "$r.rps64")" "$(v "$r.p50_64")" "$(v "$r.p99_64")" \
        "$(v "$r.fixed_p50")" "$(v "$r.fixed_p99")" "$rss"
    done
    echo
  fi
  if [[ -n "$(v hx.rps16)" ]]; then
    echo "HX Gateway: peak RSS (VmHWM after runs c and d) $HX_RSS MB; exec to first 200 on /health/readiness: median $READY_MS ms of 5."
    echo
    echo "| target (issue 2) | measured | met |"
    echo "|---|---|---|"
    local met
    if [[ -n "$(v nginx.rps16)" ]]; then
      local r16 r64
      r16="$(calc %.0f "100 * $(v hx.rps16) / $(v nginx.rps16)")"
      r64="$(calc %.0f "100 * $(v hx.rps64) / $(v nginx.rps64)")"
      met="$(awk "BEGIN { print ($r16 >= 75 && $r64 >= 75) ? \"met\" : \"not met\" }")"
      echo "| throughput >= 75% of nginx's | ${r16}% at 16 connections, ${r64}% at 64 | $met |"
    fi
    if [[ -n "$(v floor.rps16)" && -n "$(v nginx.rps16)" ]]; then
      echo "| (for scale) the bare hyper proxy (b2) | $(calc %.0f "100 * $(v floor.rps16) / $(v nginx.rps16)")% of nginx at 16 connections, $(calc %.0f "100 * $(v floor.rps64) / $(v nginx.rps64)")% at 64 | - |"
    fi
    if [[ -n "$(v direct.p50_16)" ]]; then
      local o16 ofix
      o16="$(calc %.3f "$(v hx.p50_16) - $(v direct.p50_16)")"
      ofix="$(calc %.3f "$(v hx.fixed_p50) - $(v direct.fixed_p50)")"
      met="$(awk "BEGIN { print ($o16 < 0.3) ? \"met\" : \"not met\" }")"
      echo "| p50 overhead over direct < 0.3 ms at 16 connections (full load) | ${o16} ms | $met |"
      met="$(awk "BEGIN { print ($ofix < 0.3) ? \"met\" : \"not met\" }")"
      echo "| same, at a fixed ${RATE} req/s (no queueing) | ${ofix} ms | $met |"
    fi
    met="$(awk "BEGIN { print (\"$HX_RSS\" != \"?\" && $HX_RSS + 0 < 50) ? \"met\" : \"not met\" }")"
    echo "| peak RSS < 50 MB | $HX_RSS MB | $met |"
    met="$(awk "BEGIN { print (\"$READY_MS\" != \"?\" && $READY_MS + 0 < 100) ? \"met\" : \"not met\" }")"
    echo "| ready < 100 ms | $READY_MS ms (median of 5) | $met |"
    if [[ -n "$(v hx-group.rps16)" ]]; then
      echo
      echo "Routing (d vs c): $(calc %+.1f "100 * ($(v hx-group.rps16) / $(v hx.rps16) - 1)")% req/s at 16 connections," \
        "$(calc %+.1f "100 * ($(v hx-group.rps64) / $(v hx.rps64) - 1)")% at 64;" \
        "p50 at ${RATE}/s $(calc %+.3f "$(v hx-group.fixed_p50) - $(v hx.fixed_p50)") ms."
    fi
    for r in hx-vkey hx-ratelimit hx-cache; do
      [[ -n "$(v "$r.rps16")" ]] || continue
      echo "$(desc "$r") vs (c): $(calc %+.1f "100 * ($(v "$r.rps16") / $(v hx.rps16) - 1)")% req/s at 16 connections," \
        "$(calc %+.1f "100 * ($(v "$r.rps64") / $(v hx.rps64) - 1)")% at 64;" \
        "p50 at ${RATE}/s $(calc %+.3f "$(v "$r.fixed_p50") - $(v hx.fixed_p50)") ms."
    done
  fi
  if ((${#STREAM_RUNS[@]})); then
    echo
    echo "Streaming (issue 17): ${STREAM_RATE} streams/s on 16 connections (open loop), the mock pausing ${STREAM_GAP_US} µs between chunks;"
    echo "time to the first SSE event of the answer (its first \`data:\` line) and to the end of the stream."
    echo
    echo "| run | first event p50 | first event p99 | whole stream p50 | whole stream p99 | streams/s |"
    echo "|---|---:|---:|---:|---:|---:|"
    for r in "${STREAM_RUNS[@]}"; do
      flag=""
      (($(v "$r.bad") > 0)) && flag=" ⚠ $(v "$r.bad") errors"
      printf '| %s%s | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.0f |\n' "$(desc "$r")" "$flag" \
        "$(v "$r.first_p50")" "$(v "$r.first_p99")" "$(v "$r.total_p50")" "$(v "$r.total_p99")" "$(v "$r.rate")"
    done
    if [[ -n "$(v stream-direct.first_p50)" ]]; then
      echo
      for r in stream-hx stream-messages stream-responses; do
        [[ -n "$(v "$r.first_p50")" ]] || continue
        echo "$(desc "$r"): the gateway adds $(calc %+.3f "$(v "$r.first_p50") - $(v stream-direct.first_p50)") ms to the time to first event at p50," \
          "$(calc %+.3f "$(v "$r.first_p99") - $(v stream-direct.first_p99)") ms at p99 (over the upstream's own, s1)."
      done
    fi
  fi
  if ((${#SKIPPED[@]})); then
    echo
    echo "Skipped:"
    local s
    for s in "${SKIPPED[@]}"; do echo "- $s"; done
  fi
}
report | tee "$BENCH/results.md"
log "written to $BENCH/results.md"
