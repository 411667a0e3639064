#!/usr/bin/env bash
# Verifies the systemd files in deploy/ with `systemd-analyze verify`:
#   1. deploy/hx-gateway.service on its own;
#   2. deploy/litellm-to-hx.conf applied as a drop-in on a stand-in LiteLLM unit (this catches a
#      missing `ExecStart=` reset: systemd refuses two ExecStart lines on a non-oneshot unit).
# Plus a few static checks on directives the deployment relies on, so removing one fails CI.
#
# Run: bash deploy/tests/verify_unit.sh      (HX_BIN=target/debug/hx-gateway to verify with the
#                                             built binary in place of /usr/local/bin/hx-gateway)
# Needs systemd-analyze (Debian package `systemd`; scripts/setup.sh installs it). Without it
# this fails, naming the package: a test never installs system packages itself.
# Exits non-zero on any failure.
#
# Substitutions made before verifying (the files in deploy/ are never modified):
#   - ExecStart's /usr/local/bin/hx-gateway is replaced by $HX_BIN if given, else /bin/true:
#     `verify` fails when the ExecStart program does not exist, and CI machines have no installed
#     gateway. Only the program path changes; the flags, ${LITELLM_CONFIG} included, are kept.
#   - Nothing else: User=hx-gateway need not exist (verify does not resolve users), and
#     --man=no skips the Documentation= man-page lookup.
# `verify` exits 0 even for unknown keys or unparsable values (it only logs "ignoring"), so any
# output at all counts as a failure here.
# shellcheck disable=SC2016 # the regexes below match literal $MAINPID and ${LITELLM_CONFIG}
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(cd "$HERE/.." && pwd)
UNIT_SRC=$DEPLOY/hx-gateway.service
DROPIN_SRC=$DEPLOY/litellm-to-hx.conf
INSTALLED_BIN=/usr/local/bin/hx-gateway

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$1"
}
fail() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$1"
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/     /'; fi
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    fail "systemd-analyze not found: install the Debian package 'systemd' (bash scripts/setup.sh does)"
    echo "0 passed, 1 failed"
    exit 1
fi

bin=${HX_BIN:-/bin/true}
if [[ ! -x $bin ]]; then
    echo "HX_BIN=$bin is not an executable file" >&2
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d "${TMPDIR:-/tmp}/hx-verify-unit.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Runs systemd-analyze verify; passes only when it exits 0 and prints nothing.
verify() {
    local name=$1 file=$2 out rc=0
    out=$(systemd-analyze verify --man=no "$file" 2>&1) || rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
        pass "$name"
    else
        fail "$name (exit $rc)" "$out"
    fi
}

substitute_bin() { sed "s#${INSTALLED_BIN}#${bin}#g" "$1"; }

# 1. The unit itself. The file keeps its name: verify derives the unit name from it.
substitute_bin "$UNIT_SRC" >"$work/hx-gateway.service"
if grep -qF "$INSTALLED_BIN" "$work/hx-gateway.service"; then
    fail "substitution of $INSTALLED_BIN in hx-gateway.service"
fi
verify "systemd-analyze verify hx-gateway.service" "$work/hx-gateway.service"

# 2. The drop-in, on a LiteLLM unit shaped like the one it replaces (spec: operations.md).
# systemd-analyze picks up drop-ins from UNIT.d/ next to the unit file it is given.
mkdir -p "$work/litellm/litellm.service.d"
cat >"$work/litellm/litellm.service" <<EOF
[Unit]
Description=LiteLLM proxy (stand-in for verification)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=/etc/litellm/litellm.env
ExecStart=/bin/true --host 0.0.0.0 --port 4000 --config \${LITELLM_CONFIG}
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
substitute_bin "$DROPIN_SRC" >"$work/litellm/litellm.service.d/litellm-to-hx.conf"
verify "systemd-analyze verify litellm.service + litellm-to-hx.conf drop-in" \
    "$work/litellm/litellm.service"

# 3. Static checks: directives the deployment depends on (operations.md, issue 7).
require() { # require FILE LINE-REGEX DESCRIPTION
    if grep -Eq "^$2\$" "$1"; then
        pass "$(basename "$1"): $3"
    else
        fail "$(basename "$1"): $3 (no line matching ^$2\$)"
    fi
}
u=$UNIT_SRC
require "$u" 'Type=notify' "Type=notify (sd_notify readiness)"
require "$u" 'EnvironmentFile=/etc/hx-gateway/hx-gateway\.env' "EnvironmentFile"
require "$u" 'ExecStart=/usr/local/bin/hx-gateway --config \$\{LITELLM_CONFIG\} --host 0\.0\.0\.0 --port 4000' "ExecStart with LiteLLM's flags"
require "$u" 'Environment=LITELLM_CONFIG=.+' "LITELLM_CONFIG default"
require "$u" 'ExecReload=/bin/kill -HUP \$MAINPID' "SIGHUP reload"
require "$u" 'Restart=on-failure' "restart policy"
require "$u" 'KillSignal=SIGTERM' "SIGTERM stop"
require "$u" 'User=hx-gateway' "dedicated user"
require "$u" 'NoNewPrivileges=yes' "NoNewPrivileges"
require "$u" 'ProtectSystem=strict' "ProtectSystem=strict"
require "$u" 'ReadWritePaths=/var/lib/hx-gateway' "ReadWritePaths data dir"
require "$u" 'Environment=HX_DATA_DIR=/var/lib/hx-gateway' "HX_DATA_DIR"
require "$u" 'LimitNOFILE=65536' "LimitNOFILE"
# Longer than the 30 s default graceful drain, so a draining gateway is not SIGKILLed.
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$u")
if [[ -n $stop_timeout && $stop_timeout -gt 30 ]]; then
    pass "hx-gateway.service: TimeoutStopSec=$stop_timeout exceeds the 30 s grace period"
else
    fail "hx-gateway.service: TimeoutStopSec must be a number of seconds above 30 (got '${stop_timeout}')"
fi
d=$DROPIN_SRC
require "$d" 'ExecStart=' "resets the LiteLLM ExecStart"
require "$d" 'ExecStart=/usr/local/bin/hx-gateway --config \$\{LITELLM_CONFIG\} --host 0\.0\.0\.0 --port 4000' "same flags and port as LiteLLM"
if grep -q '^EnvironmentFile=' "$d"; then
    fail "litellm-to-hx.conf: must keep the LiteLLM unit's EnvironmentFile (found EnvironmentFile=)"
else
    pass "litellm-to-hx.conf: keeps the LiteLLM unit's EnvironmentFile"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
