#!/usr/bin/env bash
# Tests for deploy/hx-gatewayctl, run against stub `systemctl` and `journalctl` put first on
# PATH. The stubs record every call in a log and simulate unit states with files in a temp dir,
# so no real systemd is touched and the tests run anywhere (as any user).
#
# Run: bash deploy/tests/test_hx_gatewayctl.sh
# Prints "N passed, M failed" last; exits non-zero when anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CTL=$HERE/../hx-gatewayctl
DROPIN_SRC=$HERE/../litellm-to-hx.conf

passed=0
failed=0
current=""

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    printf 'FAIL [%s]: %s\n' "$current" "$*"
    printf '  rc=%s\n  --- stdout ---\n%s\n  --- stderr ---\n%s\n  --- calls ---\n%s\n' \
        "${RC:-?}" "$(cat "$T/out" 2>/dev/null)" "$(cat "$T/err" 2>/dev/null)" \
        "$(cat "$T/state/calls.log" 2>/dev/null)"
}
check() { # check DESCRIPTION COMMAND...
    local desc=$1
    shift
    if "$@"; then pass; else fail "$desc"; fi
}
contains() { grep -qF -- "$2" "$1"; }
not_contains() { ! grep -qF -- "$2" "$1"; }
rc_is() { [[ $RC == "$1" ]]; }
rc_nonzero() { [[ $RC != 0 ]]; }
state_of() { cat "$T/state/$1.state" 2>/dev/null || echo inactive; }
state_is() { [[ $(state_of "$1") == "$2" ]]; }
# Line number of the first call matching a fixed string (0 when absent).
call_line() { grep -nF -- "$1" "$T/state/calls.log" | head -n1 | cut -d: -f1 || true; }
last_call_line() { grep -nF -- "$1" "$T/state/calls.log" | tail -n1 | cut -d: -f1 || true; }
checked_after() { # checked_after ACTION CHECK: CHECK was called (again) after ACTION
    local a b
    a=$(call_line "$1")
    b=$(last_call_line "$2")
    [[ -n $a && -n $b && $a -lt $b ]]
}
called_before() { # called_before FIRST SECOND: both called, FIRST earlier
    local a b
    a=$(call_line "$1")
    b=$(call_line "$2")
    [[ -n $a && -n $b && $a -lt $b ]]
}

write_stubs() {
    mkdir -p "$T/bin" "$T/state"
    # systemctl stub. State per unit in $STUB_STATE/UNIT.state. Behaviour switches:
    #   $STUB_STATE/start_mode: ok | fail (start exits 1, unit failed) | crash (start exits 0,
    #                           unit is failed when checked afterwards)
    #   $STUB_STATE/stop_mode:  ok | stuck (unit stays deactivating) | slow (deactivating for
    #                           one is-active query, then inactive)
    # daemon-reload snapshots whether $STUB_DROPIN exists; `show -p ExecStart` answers from that
    # snapshot, like systemd which only sees drop-in changes after a daemon-reload.
    cat >"$T/bin/systemctl" <<'STUB'
#!/usr/bin/env bash
set -u
S=$STUB_STATE
echo "systemctl $*" >>"$S/calls.log"
verb="" unit="" prop=""
while (($# > 0)); do
    case $1 in
    -p) prop=$2; shift 2 ;;
    --*|-*) shift ;;
    *) if [[ -z $verb ]]; then verb=$1; else unit=$1; fi; shift ;;
    esac
done
mode() { cat "$S/$1" 2>/dev/null || echo ok; }
get() { cat "$S/$unit.state" 2>/dev/null || echo inactive; }
set_state() { echo "$1" >"$S/$unit.state"; }
do_start() {
    case $(mode start_mode) in
    fail) set_state failed; echo "Job for $unit failed." >&2; return 1 ;;
    crash) set_state failed; return 0 ;;
    *) set_state active ;;
    esac
}
do_stop() {
    case $(mode stop_mode) in
    stuck|slow) set_state deactivating ;;
    *) set_state inactive ;;
    esac
}
case $verb in
start) do_start ;;
stop) do_stop ;;
restart) do_stop; do_start ;;
is-active)
    st=$(get)
    if [[ $st == deactivating && $(mode stop_mode) == slow ]]; then set_state inactive; fi
    echo "$st"
    [[ $st == active ]]
    ;;
status)
    st=$(get)
    echo "* $unit - stub"
    echo "     Active: $st"
    [[ $st == active ]] || exit 3
    ;;
daemon-reload)
    if [[ -f $STUB_DROPIN ]]; then echo yes >"$S/loaded_dropin"; else echo no >"$S/loaded_dropin"; fi
    ;;
show)
    if [[ $prop == ExecStart ]]; then
        if [[ $(cat "$S/loaded_dropin" 2>/dev/null) == yes ]]; then
            echo "{ path=/usr/local/bin/hx-gateway ; argv[]=/usr/local/bin/hx-gateway --config /etc/litellm/config.yaml --host 0.0.0.0 --port 4000 }"
        else
            echo "{ path=/usr/bin/litellm ; argv[]=/usr/bin/litellm --host 0.0.0.0 --port 4000 --config /etc/litellm/config.yaml }"
        fi
    fi
    ;;
*) echo "stub systemctl: unsupported verb $verb" >&2; exit 1 ;;
esac
STUB
    cat >"$T/bin/journalctl" <<'STUB'
#!/usr/bin/env bash
echo "journalctl $*" >>"$STUB_STATE/calls.log"
unit=""
while (($# > 0)); do
    case $1 in -u) unit=$2; shift 2 ;; *) shift ;; esac
done
echo "stub-journal: $unit: error: failed to bind 0.0.0.0:4000"
STUB
    chmod +x "$T/bin/systemctl" "$T/bin/journalctl"
    # A stand-in for the installed binary (switch refuses to run without one).
    printf '#!/bin/sh\nexit 0\n' >"$T/hx-gateway"
    chmod +x "$T/hx-gateway"
}

# Fresh sandbox for each test: stubs, state, drop-in dir, backup dir, and the environment the
# control script reads.
setup() {
    current=$1
    T=$(mktemp -d "${TMPDIR:-/tmp}/hxctl-test.XXXXXX")
    write_stubs
    : >"$T/state/calls.log"
    DROPIN=$T/etc/systemd/system/litellm.service.d/litellm-to-hx.conf
    BACKUP=$T/backup
    unset HXCTL_UNIT
    export STUB_STATE=$T/state STUB_DROPIN=$DROPIN
    export HXCTL_WAIT=0 HXCTL_DROPIN=$DROPIN HXCTL_BACKUP_DIR=$BACKUP HXCTL_BIN=$T/hx-gateway
    export HXCTL_DROPIN_SOURCE=$DROPIN_SRC
    RC=""
}
teardown() { rm -rf "$T"; }

run_ctl() {
    PATH="$T/bin:$PATH" "$CTL" "$@" >"$T/out" 2>"$T/err"
    RC=$?
}

install_dropin_as_if_switched() {
    mkdir -p "$(dirname "$DROPIN")"
    cp "$DROPIN_SRC" "$DROPIN"
    echo yes >"$T/state/loaded_dropin"
    echo active >"$T/state/litellm.service.state"
}

# --- tests ------------------------------------------------------------------------------------

test_stop_confirms_inactive() {
    setup stop_confirms_inactive
    echo active >"$T/state/hx-gateway.service.state"
    run_ctl stop
    check "exit 0" rc_is 0
    check "unit is inactive" state_is hx-gateway.service inactive
    check "systemctl stop called on default unit" contains "$T/state/calls.log" "systemctl stop hx-gateway.service"
    check "state checked after stop" called_before "systemctl stop hx-gateway.service" "systemctl is-active hx-gateway.service"
    check "reports confirmation" contains "$T/out" "hx-gateway.service is inactive (confirmed)"
    check "no journal on success" not_contains "$T/state/calls.log" "journalctl"
    teardown
}

test_stop_waits_for_deactivating() {
    setup stop_waits_for_deactivating
    echo active >"$T/state/hx-gateway.service.state"
    echo slow >"$T/state/stop_mode"
    HXCTL_WAIT=1 run_ctl stop
    check "exit 0 once the unit reaches inactive within the wait" rc_is 0
    check "polled is-active more than once" [ "$(grep -c 'is-active' "$T/state/calls.log")" -ge 2 ]
    teardown
}

test_stop_stuck_fails() {
    setup stop_stuck_fails
    echo active >"$T/state/hx-gateway.service.state"
    echo stuck >"$T/state/stop_mode"
    run_ctl stop
    check "exit non-zero" rc_nonzero
    check "names the state" contains "$T/err" "still 'deactivating'"
    check "prints journal tail" contains "$T/err" "stub-journal: hx-gateway.service"
    teardown
}

test_start_confirms_active() {
    setup start_confirms_active
    run_ctl start
    check "exit 0" rc_is 0
    check "unit is active" state_is hx-gateway.service active
    check "state checked after start" checked_after "systemctl start hx-gateway.service" "systemctl is-active hx-gateway.service"
    check "reports confirmation" contains "$T/out" "hx-gateway.service is active (confirmed)"
    check "no journal on success" not_contains "$T/state/calls.log" "journalctl"
    teardown
}

test_start_failure_prints_journal() {
    setup start_failure_prints_journal
    echo fail >"$T/state/start_mode"
    run_ctl start
    check "exit non-zero" rc_nonzero
    check "journalctl called with the unit, 50 lines, no pager" contains "$T/state/calls.log" "journalctl -u hx-gateway.service -n 50 --no-pager"
    check "journal tail printed" contains "$T/err" "stub-journal: hx-gateway.service: error: failed to bind"
    teardown
}

test_start_crash_after_start_detected() {
    setup start_crash_after_start_detected
    echo crash >"$T/state/start_mode"
    run_ctl start
    check "exit non-zero" rc_nonzero
    check "says the unit is not active" contains "$T/err" "is 'failed'"
    check "journal tail printed" contains "$T/err" "stub-journal: hx-gateway.service"
    teardown
}

test_restart_stops_then_starts() {
    setup restart_stops_then_starts
    echo active >"$T/state/hx-gateway.service.state"
    run_ctl restart
    check "exit 0" rc_is 0
    check "stop before start" called_before "systemctl stop hx-gateway.service" "systemctl start hx-gateway.service"
    check "confirms both" contains "$T/out" "inactive (confirmed)"
    check "confirms active" contains "$T/out" "active (confirmed)"
    teardown
}

test_restart_aborts_when_stop_fails() {
    setup restart_aborts_when_stop_fails
    echo active >"$T/state/hx-gateway.service.state"
    echo stuck >"$T/state/stop_mode"
    run_ctl restart
    check "exit non-zero" rc_nonzero
    check "does not start after a failed stop" not_contains "$T/state/calls.log" "systemctl start"
    teardown
}

test_unit_override() {
    setup unit_override
    run_ctl --unit litellm start
    check "--unit (suffix added)" contains "$T/state/calls.log" "systemctl start litellm.service"
    : >"$T/state/calls.log"
    HXCTL_UNIT=other.service run_ctl start
    check "HXCTL_UNIT env" contains "$T/state/calls.log" "systemctl start other.service"
    : >"$T/state/calls.log"
    HXCTL_UNIT=other.service run_ctl --unit=third.service start
    check "--unit beats HXCTL_UNIT" contains "$T/state/calls.log" "systemctl start third.service"
    check "exit 0" rc_is 0
    teardown
}

test_status() {
    setup status
    echo active >"$T/state/hx-gateway.service.state"
    run_ctl status
    check "exit 0 when active" rc_is 0
    check "shows systemctl status" contains "$T/out" "Active: active"
    check "reports drop-in absence" contains "$T/out" "drop-in: not installed"
    echo inactive >"$T/state/hx-gateway.service.state"
    run_ctl status
    check "exit 3 (systemctl status) when inactive" rc_is 3
    teardown
}

test_rollback_removes_dropin_and_restarts() {
    setup rollback_removes_dropin_and_restarts
    install_dropin_as_if_switched
    run_ctl rollback
    check "exit 0" rc_is 0
    check "drop-in removed" [ ! -e "$DROPIN" ]
    local backups=("$BACKUP"/litellm-to-hx.conf.*)
    check "drop-in backed up unchanged" cmp -s "$DROPIN_SRC" "${backups[0]}"
    check "daemon-reload before stop" called_before "systemctl daemon-reload" "systemctl stop litellm.service"
    check "stop before start" called_before "systemctl stop litellm.service" "systemctl start litellm.service"
    check "confirmed active" checked_after "systemctl start litellm.service" "systemctl is-active litellm.service"
    check "unit active" state_is litellm.service active
    check "reports the restored ExecStart" contains "$T/out" "/usr/bin/litellm"
    check "acted on the drop-in's unit, not hx-gateway.service" not_contains "$T/state/calls.log" "hx-gateway.service"
    teardown
}

test_rollback_without_dropin_fails() {
    setup rollback_without_dropin_fails
    run_ctl rollback
    check "exit 1" rc_is 1
    check "explains" contains "$T/err" "nothing to roll back"
    check "no restart attempted" not_contains "$T/state/calls.log" "systemctl stop"
    teardown
}

test_rollback_start_failure() {
    setup rollback_start_failure
    install_dropin_as_if_switched
    echo fail >"$T/state/start_mode"
    run_ctl rollback
    check "exit non-zero" rc_nonzero
    check "journal tail of litellm.service" contains "$T/err" "stub-journal: litellm.service"
    teardown
}

test_rollback_detects_remaining_hx_execstart() {
    setup rollback_detects_remaining_hx_execstart
    install_dropin_as_if_switched
    # Simulate another drop-in that still points at hx-gateway: daemon-reload keeps it loaded.
    export STUB_DROPIN=$T/other-dropin.conf
    touch "$STUB_DROPIN"
    run_ctl rollback
    check "exit non-zero" rc_nonzero
    check "says hx-gateway still runs" contains "$T/err" "still runs hx-gateway"
    teardown
}

test_switch_installs_dropin() {
    setup switch_installs_dropin
    echo active >"$T/state/litellm.service.state"
    run_ctl switch
    check "exit 0" rc_is 0
    check "drop-in installed with the shipped content" cmp -s "$DROPIN_SRC" "$DROPIN"
    check "previous ExecStart recorded" contains "$BACKUP/litellm.service.previous-execstart" "/usr/bin/litellm"
    check "daemon-reload before stop" called_before "systemctl daemon-reload" "systemctl stop litellm.service"
    check "confirmed active" checked_after "systemctl start litellm.service" "systemctl is-active litellm.service"
    check "reports hx-gateway running" contains "$T/out" "/usr/local/bin/hx-gateway"
    teardown
}

test_switch_refuses_without_binary() {
    setup switch_refuses_without_binary
    export HXCTL_BIN=$T/missing/hx-gateway
    run_ctl install-dropin
    check "exit 1" rc_is 1
    check "explains" contains "$T/err" "not executable"
    check "drop-in not installed" [ ! -e "$DROPIN" ]
    check "no daemon-reload" not_contains "$T/state/calls.log" "daemon-reload"
    teardown
}

test_switch_then_rollback_round_trip() {
    setup switch_then_rollback_round_trip
    echo active >"$T/state/litellm.service.state"
    run_ctl switch
    check "switch exit 0" rc_is 0
    run_ctl rollback
    check "rollback exit 0" rc_is 0
    check "drop-in gone" [ ! -e "$DROPIN" ]
    check "no note about a different ExecStart" not_contains "$T/out" "differs"
    run_ctl switch
    check "switch again exit 0" rc_is 0
    check "drop-in back" cmp -s "$DROPIN_SRC" "$DROPIN"
    teardown
}

test_dropin_unit_mismatch_is_usage_error() {
    setup dropin_unit_mismatch_is_usage_error
    install_dropin_as_if_switched
    run_ctl --unit hx-gateway.service rollback
    check "exit 2" rc_is 2
    check "drop-in left in place" [ -e "$DROPIN" ]
    teardown
}

test_usage_errors() {
    setup usage_errors
    run_ctl frobnicate
    check "unknown command exits 2" rc_is 2
    check "unknown command prints usage" contains "$T/err" "Usage:"
    check "names the command" contains "$T/err" "unknown command: frobnicate"
    run_ctl
    check "no command exits 2" rc_is 2
    run_ctl --bogus start
    check "unknown option exits 2" rc_is 2
    run_ctl --wait soon start
    check "non-numeric wait exits 2" rc_is 2
    check "no systemctl call on usage errors" [ ! -s "$T/state/calls.log" ]
    run_ctl --help
    check "--help exits 0" rc_is 0
    check "--help prints usage" contains "$T/out" "rollback"
    teardown
}

tests=$(declare -F | awk '{print $3}' | grep '^test_')
for t in $tests; do
    "$t"
done

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
