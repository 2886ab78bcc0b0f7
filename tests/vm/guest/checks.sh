#!/bin/bash
# The check_* functions are called by name ("check_${NAME//-/_}"), not unreachable:
# shellcheck disable=SC2317
# The burstd VM test driver, run in the guest by burstd-checks.service.
#
#   checks.sh            run every check; each prints exactly one line on the serial console:
#                          PASS <name> <details> | FAIL <name> <reason> | SKIP <name> <reason>
#                        plus CHECK-INFO lines, between BURSTD-CHECKS BEGIN/END markers.
#   checks.sh one NAME   run one check and print its line on stdout (the driver runs each
#                        one like this under `timeout`, so no check can hang the run).
#
# The daemon checks are written against the contract in tests/vm/README.md; while the
# daemon is absent they FAIL with "burstd binary missing".
set -u

CONSOLE=${BURSTD_VM_CONSOLE:-/dev/ttyS0}
BURSTD=/usr/local/bin/burstd
CONF=/etc/burstd/burstd.toml
UNIT_FILE=/etc/systemd/system/burstd.service
METRICS_URL=http://127.0.0.1:9749/metrics
WORK=/run/burstd-vm
STD=/sys/fs/cgroup/system.slice/burn-std.service
UNL=/sys/fs/cgroup/system.slice/burn-unl.service
HELD="20000 100000"   # t3.micro baseline: 12 credits/h = 0.2 cores, period 100000 us
UNCAPPED="max 100000"

# --- helpers for single checks ---------------------------------------------------------
pass() { echo "PASS $NAME $*"; exit 0; }
fail() { echo "FAIL $NAME $*"; exit 1; }
skip() { echo "SKIP $NAME $*"; exit 0; }

need_burstd() { [[ -x $BURSTD ]] || fail "burstd binary missing"; }
need_active() {
    need_burstd
    [[ $(systemctl is-active burstd) == active ]] || fail "burstd is not active"
}
cpu_max() { cat "$1/cpu.max" 2>/dev/null || echo "?"; }

# wait_for SECS CMD...: poll CMD every 0.2 s until it succeeds (0) or SECS pass (1).
wait_for() {
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < end )) || return 1
        sleep 0.2
    done
}
cpu_max_is() { [[ $(cpu_max "$1") == "$2" ]]; }

# read_stat CGDIR: sets ST_USAGE ST_THROTTLED ST_PERIODS from cpu.stat and ST_TIME (us),
# with shell builtins only: under TCG a fork can take a large part of a second, which would
# misalign the usage and the wall-clock windows.
read_stat() {
    local k v
    ST_USAGE=0 ST_THROTTLED=0 ST_PERIODS=0
    while read -r k v; do
        case $k in
            usage_usec) ST_USAGE=$v ;;
            throttled_usec) ST_THROTTLED=$v ;;
            nr_periods) ST_PERIODS=$v ;;
        esac
    done <"$1/cpu.stat"
    ST_TIME=${EPOCHREALTIME/./}
}
# measure CGDIR SECS: sets SHARE (% of one CPU used over SECS s of wall time), THROTTLED
# (throttled_usec grown) and PERIODS (nr_periods grown).
measure() {
    local u0 t0 th0 p0
    read_stat "$1"; u0=$ST_USAGE t0=$ST_TIME th0=$ST_THROTTLED p0=$ST_PERIODS
    sleep "$2"
    read_stat "$1"
    SHARE=$(awk -v du=$(( ST_USAGE - u0 )) -v dt=$(( ST_TIME - t0 )) 'BEGIN {printf "%.1f", 100 * du / dt}')
    THROTTLED=$(( ST_THROTTLED - th0 ))
    PERIODS=$(( ST_PERIODS - p0 ))
}
# between X LO HI: LO <= X <= HI, as decimals.
between() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN {exit !(x >= lo && x <= hi)}'; }

# read_field WORKLOAD FIELD...: the first FIELD found in the workload's object of
# `burstd status --json` (the API's live view: {"CreditBalances": [{"InstanceId": …,
# "CpuCreditBalance": …, "SurplusCreditBalance": …}, …]}, keys in any order).
read_field() {
    local workload=$1 json field value
    shift
    json=$(timeout 10 "$BURSTD" status --json 2>/dev/null) || json=""
    # One workload object per line (they hold no nested objects), then pick ours.
    json=$(printf '%s' "$json" | tr -d ' \t\r\n' | tr '}' '\n' | grep -F "\"InstanceId\":\"$workload\"")
    for field in "$@"; do
        value=$(printf '%s' "$json" \
            | sed -n "s/.*\"$field\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" \
            | head -n1)
        [[ -n $value ]] && { echo "$value"; return 0; }
    done
    return 1
}
read_balance() { read_field "$1" CpuCreditBalance; }

# metric NAME WORKLOAD: the value of NAME{...workload="WORKLOAD"...}; exit 7 = refused.
metric() {
    local body rc
    body=$(curl -s --max-time 5 "$METRICS_URL"); rc=$?
    (( rc == 0 )) || return "$rc"
    printf '%s\n' "$body" | grep -E "^$1\{[^}]*workload=\"$2\"" | awk '{print $NF}' | head -n1
}

# --- checks that need no burstd ----------------------------------------------------------
check_cgroup2_cpu() {
    local c
    c=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null) || fail "no cgroup v2 at /sys/fs/cgroup"
    [[ " $c " == *" cpu "* ]] || fail "no cpu controller in cgroup.controllers: $c"
    pass "controllers: $c"
}

check_unit_verify() {
    local out rc
    out=$(systemd-analyze verify "$UNIT_FILE" 2>&1); rc=$?
    if (( rc != 0 )) && [[ ! -x $BURSTD ]]; then
        # Without the binary, verify only complains that ExecStart cannot be run.
        out=$(printf '%s\n' "$out" | grep -v "$BURSTD" | grep -v '^$')
        [[ -z $out ]] && pass "clean apart from the missing $BURSTD"
    fi
    (( rc == 0 )) || fail "rc=$rc: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
    [[ -z $out ]] || fail "warnings: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
    pass "no warnings"
}

# The unit's sandbox lets a root process with no capabilities write another unit's cgroup
# files, while the rest of the file system stays read-only. Runs the [Service] sandbox lines
# of burstd.service on a shell through systemd-run.
check_sandbox_writes_cgroup() {
    local props=() line out
    while IFS= read -r line; do
        props+=(-p "$line")
    done < <(awk '/^\[/ {s = $0} s == "[Service]" && /^[A-Za-z]+=/' "$UNIT_FILE" \
        | grep -Ev '^(Type|Exec[A-Za-z]*|Watchdog[A-Za-z]*|Restart[A-Za-z]*|Timeout[A-Za-z]*|[A-Za-z]*Directory[A-Za-z]*)=')
    (( ${#props[@]} > 10 )) || fail "found only ${#props[@]} sandbox properties in $UNIT_FILE"
    out=$(systemd-run --wait --quiet --pipe "${props[@]}" /bin/sh -c "
        echo '50000 100000' > $STD/cpu.max || { echo 'write cpu.max refused'; exit 1; }
        echo '+cpu' > /sys/fs/cgroup/system.slice/cgroup.subtree_control \
            || { echo 'write subtree_control refused'; exit 1; }
        if touch /etc/burstd-sandbox-probe 2>/dev/null; then echo '/etc writable'; exit 1; fi
        grep -q '^CapEff:.*0000000000000000' /proc/self/status || { grep CapEff /proc/self/status; exit 1; }
        echo ok" 2>&1)
    local got
    got=$(cpu_max "$STD")
    echo "$UNCAPPED" >"$STD/cpu.max"
    [[ $out == ok ]] || fail "sandboxed shell: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
    [[ $got == "50000 100000" ]] || fail "cpu.max after the sandboxed write: $got"
    pass "no capabilities, /etc read-only, cpu.max and cgroup.subtree_control writable"
}

# systemd itself caps a unit (CPUQuota=) and the kernel enforces it: the substrate works.
check_cpu_max_enforced() {
    systemctl set-property --runtime burn-std.service CPUQuota=20% || fail "set-property failed"
    wait_for 5 cpu_max_is "$STD" "$HELD" || fail "cpu.max is $(cpu_max "$STD"), want $HELD"
    measure "$STD" 3
    systemctl set-property --runtime burn-std.service CPUQuota= >/dev/null 2>&1
    systemctl revert burn-std.service >/dev/null 2>&1
    between "$SHARE" 18 22 || fail "burn-std used $SHARE% of a CPU under CPUQuota=20%, want 18-22"
    (( THROTTLED > 0 )) || fail "throttled_usec did not grow"
    pass "usage $SHARE% of one CPU, throttled ${THROTTLED}us in $PERIODS periods in 3 s"
}

# --- daemon checks -------------------------------------------------------------------------
burstd_is_active() { [[ $(systemctl is-active burstd) == active ]]; }
check_burstd_active() {
    need_burstd
    wait_for 30 burstd_is_active \
        || fail "burstd is $(systemctl is-active burstd) 30 s after start"
    pass "active, MainPID $(systemctl show -p MainPID --value burstd)"
}

# 0.5 credits at net 0.8 cores (1 core used, 0.2 earned) last ~0.6 s of wall time at
# time_scale 60; then burstd must hold burn-std at its 20% baseline.
check_std_held_at_baseline() {
    need_active
    wait_for 60 cpu_max_is "$STD" "$HELD" || fail "cpu.max is $(cpu_max "$STD") after 60 s, want $HELD"
    measure "$STD" 5
    between "$SHARE" 18 22 || fail "burn-std used $SHARE% of a CPU while held, want 18-22"
    (( THROTTLED > 0 )) || fail "throttled_usec did not grow in 5 s"
    pass "cpu.max $HELD, usage $SHARE% of one CPU, throttled ${THROTTLED}us in $PERIODS periods in 5 s"
}

# Evaluated last: the sampler (started with burstd) saw burn-unl's cpu.max all run long.
check_unl_never_capped() {
    need_active
    local n bad
    n=$(wc -l <"$WORK/unl-cpu-max" 2>/dev/null || echo 0)
    bad=$(grep -cvx "$UNCAPPED" "$WORK/unl-cpu-max" 2>/dev/null || true)
    (( n >= 5 )) || fail "only $n samples of burn-unl cpu.max"
    (( bad == 0 )) || fail "$bad of $n samples were not '$UNCAPPED': $(grep -vx "$UNCAPPED" "$WORK/unl-cpu-max" | sort | uniq -c | head -n3 | tr '\n' ' ')"
    measure "$UNL" 3
    between "$SHARE" 80 1000 || fail "burn-unl used $SHARE% of a CPU, want > 80"
    pass "$n samples all '$UNCAPPED', usage $SHARE% of one CPU"
}

# --- containers (Podman through its Docker-API socket) --------------------------------------
# container_cgroup NAME: the cgroup directory of container NAME, from its process.
container_cgroup() {
    local pid
    pid=$(timeout 60 podman inspect -f '{{.State.Pid}}' "$1" 2>/dev/null) || return 1
    echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$pid/cgroup")"
}
# A labelled busy container drains 0.5 credits (~0.6 s at time_scale 60) and is held at
# t3.micro's baseline, measured from its own cpu.stat; an unlabelled one is never touched.
check_container_held() {
    need_active
    [[ -x /usr/bin/podman ]] || skip "podman not in the image"
    local img=/run/burstd-vm/bb cg plain
    # The guest's root is the initramfs, where pivot_root is impossible: chroot instead.
    mkdir -p /etc/containers
    printf '[engine]\nno_pivot_root = true\n' >/etc/containers/containers.conf
    if ! timeout 120 podman image exists localhost/bb:1; then
        mkdir -p "$img/bin" && cp /bin/busybox "$img/bin/" && ln -sf busybox "$img/bin/sh"
        tar -C "$img" -cf "$img.tar" . && timeout 300 podman import -q "$img.tar" localhost/bb:1 >/dev/null \
            || fail "podman import failed"
    fi
    local out
    out=$(timeout 300 podman run -d --name plain --network none localhost/bb:1 sh -c 'while :; do :; done' 2>&1) \
        || fail "podman run (unlabelled) failed: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
    timeout 300 podman run -d --name web --network none --label burstd.profile=t3.micro \
        --label burstd.mode=standard --label burstd.initial-credits=0.5 \
        localhost/bb:1 sh -c 'while :; do :; done' >/dev/null || fail "podman run (labelled) failed"
    cg=$(container_cgroup web) || fail "no cgroup for container web"
    plain=$(container_cgroup plain) || fail "no cgroup for container plain"
    wait_for 90 cpu_max_is "$cg" "$HELD" || fail "web: cpu.max is $(cpu_max "$cg") in $cg after 90 s, want $HELD"
    measure "$cg" 5
    between "$SHARE" 18 22 || fail "container web used $SHARE% of a CPU while held, want 18-22"
    [[ $(cpu_max "$plain") == "$UNCAPPED" ]] || fail "unlabelled container's cpu.max is $(cpu_max "$plain")"
    pass "web held: cpu.max $HELD in ${cg#/sys/fs/cgroup/}, usage $SHARE% of one CPU in 5 s; unlabelled: $UNCAPPED"
}
# podman stop + start: T3 keeps its (zero) balance and is held again at once; the stop is seen.
check_container_stop_start() {
    need_active
    [[ -x /usr/bin/podman ]] || skip "podman not in the image"
    local cg
    timeout 120 podman stop -t 0 web >/dev/null || fail "podman stop failed"
    timeout 120 podman start web >/dev/null || fail "podman start failed"
    cg=$(container_cgroup web) || fail "no cgroup for container web after the start"
    wait_for 30 cpu_max_is "$cg" "$HELD" || fail "web after the start: cpu.max $(cpu_max "$cg"), want $HELD"
    timeout 60 podman rm -f -t 0 web plain >/dev/null 2>&1
    pass "web held again after podman stop + start"
}

check_unl_surplus_rises() {
    need_active
    local m=burstd_cpu_surplus_credit_balance v1 v2 rc
    # SKIP while the metrics endpoint is not implemented (connection refused).
    v1=$(metric "$m" burn-unl); rc=$?
    (( rc == 7 )) && skip "metrics endpoint not there (connection refused)"
    (( rc == 0 )) || fail "curl $METRICS_URL failed (rc=$rc)"
    [[ -n $v1 ]] || fail "no $m{workload=\"burn-unl\"} in $METRICS_URL"
    sleep 3
    v2=$(metric "$m" burn-unl)
    awk -v a="$v1" -v b="$v2" 'BEGIN {exit !(b > a)}' || fail "$m went $v1 -> $v2 in 3 s, want a rise"
    pass "$m $v1 -> $v2 in 3 s"
}

check_metrics_balance() {
    need_active
    local v rc
    # SKIP while the metrics endpoint is not implemented (connection refused).
    v=$(metric burstd_cpu_credit_balance burn-std); rc=$?
    (( rc == 7 )) && skip "metrics endpoint not there (connection refused)"
    (( rc == 0 )) || fail "curl $METRICS_URL failed (rc=$rc)"
    [[ -n $v ]] || fail "no burstd_cpu_credit_balance{workload=\"burn-std\"} in $METRICS_URL"
    pass "burstd_cpu_credit_balance{workload=\"burn-std\"} $v"
}

set_std_mode() { # MODE: rewrite burn-std's mode line in the config
    awk -v mode="$1" '/^\[\[workload\]\]/ {w = ""} /^name *= *"burn-std"/ {w = "std"}
        w == "std" && /^mode *=/ {$0 = "mode = \"" mode "\""} {print}' "$CONF.orig" >"$CONF"
}
check_reload_takes_effect() {
    need_active
    cp "$CONF" "$CONF.orig"
    trap 'cp "$CONF.orig" "$CONF"; systemctl reload burstd' EXIT
    set_std_mode unlimited
    grep -q 'mode = "unlimited"' "$CONF" || fail "could not rewrite $CONF"
    timeout 20 systemctl reload burstd || fail "systemctl reload burstd failed"
    wait_for 30 cpu_max_is "$STD" "$UNCAPPED" \
        || fail "burn-std cpu.max is $(cpu_max "$STD") 30 s after switching it to unlimited"
    set_std_mode standard
    timeout 20 systemctl reload burstd || fail "systemctl reload burstd (back) failed"
    wait_for 30 cpu_max_is "$STD" "$HELD" \
        || fail "burn-std cpu.max is $(cpu_max "$STD") 30 s after switching back to standard"
    pass "unlimited -> '$UNCAPPED', back to standard -> '$HELD'"
}

# restart_keeps_balance HOW: HOW=restart or kill9. The balance of burn-std (held at baseline,
# so near 0) must survive: not reset to initial_credits (0.5), not lost. When the surplus of
# burn-unl is readable too, it must neither reset nor jump (it grows < 1 credit/s here).
active_with_new_pid() { # OLD_PID
    [[ $(systemctl is-active burstd) == active && $(systemctl show -p MainPID --value burstd) != "$1" ]]
}
restart_keeps_balance() {
    need_active
    local b a sb sa pid t0 dt
    b=$(read_balance burn-std) || fail "cannot read burn-std's balance (burstd status --json)"
    sb=$(read_field burn-unl SurplusCreditBalance) || sb=""
    pid=$(systemctl show -p MainPID --value burstd)
    t0=$(date +%s)
    if [[ $1 == restart ]]; then
        timeout 30 systemctl restart burstd || fail "systemctl restart burstd failed"
    else
        kill -9 "$pid" || fail "kill -9 $pid failed"
    fi
    wait_for 30 active_with_new_pid "$pid" \
        || fail "burstd not active again with a new pid 30 s after $1 ($(systemctl is-active burstd))"
    sleep 1
    dt=$(( $(date +%s) - t0 ))
    a=$(read_balance burn-std) || fail "cannot read burn-std's balance after $1"
    between "$a" "$(awk -v b="$b" 'BEGIN {print b - 0.25}')" "$(awk -v b="$b" 'BEGIN {print b + 0.25}')" \
        || fail "burn-std balance $b before $1, $a after (tolerance 0.25)"
    if [[ -n $sb ]]; then
        sa=$(read_field burn-unl SurplusCreditBalance) || fail "cannot read burn-unl's surplus after $1"
        between "$sa" "$(awk -v b="$sb" 'BEGIN {print b - 0.5}')" \
            "$(awk -v b="$sb" -v dt="$dt" 'BEGIN {print b + 1.0 * dt + 0.5}')" \
            || fail "burn-unl surplus $sb before $1, $sa after ${dt}s"
        pass "burn-std balance $b -> $a, burn-unl surplus $sb -> $sa across $1 (${dt}s)"
    fi
    pass "burn-std balance $b -> $a across $1 (${dt}s)"
}
check_restart_keeps_balance() { restart_keeps_balance restart; }
check_kill9_keeps_balance() { restart_keeps_balance kill9; }

check_daemon_reload_reapplied() {
    need_active
    local seen
    wait_for 30 cpu_max_is "$STD" "$HELD" || fail "burn-std not held before the test: $(cpu_max "$STD")"
    systemctl daemon-reload || fail "systemctl daemon-reload failed"
    seen=$(cpu_max "$STD")
    wait_for 15 cpu_max_is "$STD" "$HELD" \
        || fail "burn-std cpu.max is $(cpu_max "$STD") 15 s after daemon-reload, want $HELD"
    pass "right after daemon-reload '$seen', then '$HELD' again"
}

journal_has() { journalctl -u burstd --since "@$1" -o cat --no-pager 2>/dev/null | grep -Eiq "$2"; }
check_stop_start_seen() {
    need_active
    local t0
    t0=$(date +%s)
    timeout 20 systemctl stop burn-std.service || fail "systemctl stop burn-std failed"
    sleep 2
    # burstd logs e.g. "INFO workload stopped workload=burn-std balance=… charged=…".
    wait_for 10 journal_has "$t0" 'workload stopped .*workload=burn-std' || {
        timeout 20 systemctl start burn-std.service
        fail "no 'workload stopped … workload=burn-std' in journalctl -u burstd"
    }
    t0=$(date +%s)
    timeout 20 systemctl start burn-std.service || fail "systemctl start burn-std failed"
    wait_for 10 journal_has "$t0" 'workload started .*workload=burn-std' \
        || fail "no 'workload started … workload=burn-std' in journalctl -u burstd"
    pass "journal shows burn-std stopped and started"
}

# `burstd exec` on cgroup v2 as root: the command runs in burstd/exec-<pid>, its exit status
# passes through, and both its cgroup and the burstd/ parent this run created are gone after.
check_exec_v2() {
    need_burstd
    local out rc
    [[ -e /sys/fs/cgroup/burstd ]] && fail "/sys/fs/cgroup/burstd exists before the run"
    out=$(timeout 30 "$BURSTD" exec --profile t3.micro --quiet -- \
        sh -c 'cat /proc/self/cgroup; exit 7' 2>"$WORK/exec.err"); rc=$?
    (( rc == 7 )) || fail "exit status $rc, want 7: $(head -c 300 "$WORK/exec.err" | tr '\n' ' ')"
    [[ $out == 0::/burstd/exec-* ]] || fail "the command ran in '$out', want 0::/burstd/exec-<pid>"
    [[ -e /sys/fs/cgroup/burstd ]] && fail "left behind: /sys/fs/cgroup/burstd (holding: $(find /sys/fs/cgroup/burstd -mindepth 1 -maxdepth 1 -type d -printf "%f " | head -c 200))"
    pass "exit 7 passed through, ran in ${out#0::}, cgroup and parent removed"
}

# --- driver --------------------------------------------------------------------------------
if [[ ${1:-} == one ]]; then
    NAME=$2
    "check_${NAME//-/_}"
    fail "check ended without a verdict"
fi

report() { printf '%s\n' "$*" >"$CONSOLE"; printf '%s\n' "$*"; }

# run_check NAME TIMEOUT: one line on the console, whatever the check does.
run_check() {
    local out rc line
    out=$(timeout -k 5 "$2" "$0" one "$1"); rc=$?
    line=$(printf '%s\n' "$out" | grep -E "^(PASS|FAIL|SKIP) $1( |$)" | tail -n1)
    if (( rc == 124 || rc == 137 )); then
        line="FAIL $1 timed out after $2 s"
    elif [[ -z $line ]]; then
        line="FAIL $1 printed no verdict (exit $rc)"
    fi
    report "$line"
}
# run_daemon_check NAME TIMEOUT: as run_check; without the binary, no guest time is spent.
run_daemon_check() {
    if [[ -x $BURSTD ]]; then run_check "$@"; else report "FAIL $1 burstd binary missing"; fi
}

# sample_unl: burn-unl's cpu.max every 0.5 s for at most 900 s, without forking (under TCG
# every fork+exec costs tens of ms of guest CPU, which would be taken from the workloads):
# a read with a timeout on a fifo nobody writes is the sleep.
sample_unl() {
    local line end=$(( EPOCHSECONDS + 900 ))
    mkfifo "$WORK/tick" && exec 3<>"$WORK/tick"
    while (( EPOCHSECONDS < end )); do
        read -r line <"$UNL/cpu.max" && printf '%s\n' "$line"
        read -rt 0.5 -u 3
    done
}

mkdir -p "$WORK"
report "BURSTD-CHECKS BEGIN kernel $(uname -r), $(systemctl --version | head -n1), $(nproc) CPUs, up $(cut -d' ' -f1 /proc/uptime) s"
timeout 30 systemctl start burn-std.service burn-unl.service \
    || report "CHECK-INFO could not start burn-std/burn-unl"

run_check cgroup2-cpu 10
run_check unit-verify 60
exposure=$(timeout 60 systemd-analyze security --no-pager burstd.service 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9.]*\) *\([A-Z]*\).*/\1 \2/p')
report "CHECK-INFO exposure ${exposure:-unknown} (systemd-analyze security burstd.service)"
run_check sandbox-writes-cgroup 60

# Does systemd itself rewrite a unit's cpu.max on daemon-reload? (the reason for the
# daemon-reload-reapplied check; systemd writes what the unit says: no CPUQuota = max)
echo "$HELD" >"$STD/cpu.max"
timeout 30 systemctl daemon-reload
sleep 1
report "CHECK-INFO daemon-reload-rewrites-cpu.max: '$HELD' written, '$(cpu_max "$STD")' after daemon-reload"
echo "$UNCAPPED" >"$STD/cpu.max"

run_check cpu-max-enforced 30

# Does systemd give a unit a cpu.max when nothing in its slice asks for a CPU property?
# (burn-* set CPUWeight= for that reason; a real workload may not.)
timeout 20 systemd-run --quiet --slice=burstd-probe.slice --unit=burstd-probe.service sleep 30 \
    && sleep 1
report "CHECK-INFO cpu-controller-without-cpu-property: burstd-probe.slice/cgroup.subtree_control '$(cat /sys/fs/cgroup/burstd-probe.slice/cgroup.subtree_control 2>/dev/null)', cpu.max $( [[ -e /sys/fs/cgroup/burstd-probe.slice/burstd-probe.service/cpu.max ]] && echo present || echo absent)"
timeout 20 systemctl stop burstd-probe.service

if [[ -x $BURSTD ]]; then
    report "CHECK-INFO $(timeout 10 "$BURSTD" --version 2>&1 | head -n1)"
    timeout 30 systemctl start --no-block burstd.service
    # Sample burn-unl's cpu.max for the whole run (check unl-never-capped).
    sample_unl >"$WORK/unl-cpu-max" 2>&1 &
    sampler=$!
fi
run_daemon_check burstd-active 40
run_daemon_check std-held-at-baseline 90
run_daemon_check metrics-balance 15
run_daemon_check unl-surplus-rises 20
run_daemon_check daemon-reload-reapplied 40
run_daemon_check restart-keeps-balance 60
run_daemon_check kill9-keeps-balance 60
run_daemon_check reload-takes-effect 90
run_daemon_check stop-start-seen 40
run_daemon_check exec-v2 40
run_daemon_check container-held 400
run_daemon_check container-stop-start 200
run_daemon_check unl-never-capped 20
[[ -n ${sampler:-} ]] && kill "$sampler" 2>/dev/null

if [[ -x $BURSTD ]]; then
    # For whoever reads the console log: the daemon's last words (the host does not print them).
    timeout 10 journalctl -u burstd -n 60 -o short-monotonic --no-pager 2>&1 \
        | sed 's/^/GUEST-LOG /' >"$CONSOLE"
fi
report "BURSTD-CHECKS END up $(cut -d' ' -f1 /proc/uptime) s"
# burstd-checks.service powers the VM off when this exits (SuccessAction=poweroff-force).
exit 0
