#!/usr/bin/env bash
# Ensure a working one-node Slurm cluster (controller + compute node on 127.0.0.1) on a
# Debian 12 machine without systemd. Recipe: /work/shared/SLURM.md.
#
#   1. packages installed   munge slurmctld slurmd slurm-client (apt only if one is missing;
#                           --no-install-recommends, NEEDRESTART_SUSPEND=1)
#   2. /etc/slurm/slurm.conf node = `hostname -s`, CPUs = `nproc`, RealMemory = 95% of the
#                           total in `free -m`; rewritten only when it differs (e.g. after a
#                           machine resize), and then slurmctld/slurmd are restarted
#   3. spool/log/run dirs   /var/spool/slurmctld (slurm), /var/spool/slurmd, /var/log/slurm
#                           (slurm), /run/munge (munge)
#   4. daemons running      munged, slurmctld, slurmd: each started only if it does not
#                           answer (`munge -n | unmunge`, `scontrol ping`, `scontrol show
#                           slurmd`); stale pid files are removed first
#   5. node ready           `scontrol ping` UP and `sinfo` state idle/mix/alloc/comp (a
#                           drained/down node is resumed once); waits <= 60 s
#   6. verify               a one-line batch job and a 3-task array (--array=0-2), polled
#                           with `scontrol show job -o` until COMPLETED (<= 60 s), outputs
#                           checked
#
# Idempotent; a warm run takes about a second (mostly the probe jobs) on an idle node; on
# a node busy with other jobs the probes wait for free CPUs. Needs root.
# Env: REPRO_CI_SLURM_PROBE_TIMEOUT (seconds for the probe jobs, default 60).
# Prints `slurm ready: NODE (N cpus)` last; exits non-zero with `ERROR: ...` on failure.
# Leaves the daemons running. Runs of this script are serialised with a lock file.
set -euo pipefail

APT_LOG=/var/log/repro-ci-apt.log
CONF=/etc/slurm/slurm.conf
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
# sha256 of the slurm.conf the running daemons were started with by this script.
STATE=/run/repro-ci-slurm.conf.sha256
LOCK=/run/repro-ci-slurm.lock
PROBE_TIMEOUT=${REPRO_CI_SLURM_PROBE_TIMEOUT:-60}
export NEEDRESTART_SUSPEND=1

die() { echo "setup-slurm: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
T_START=$(now)
TIMINGS=()
step_start() { STEP_NAME=$1; STEP_T0=$(now); echo "setup-slurm: == $1"; }
step_end() {
    local dt
    dt=$(awk -v a="$STEP_T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
    TIMINGS+=("$(printf '%-22s %6ss' "$STEP_NAME" "$dt")")
    echo "setup-slurm:    ${STEP_NAME}: ${dt}s${1:+ ($1)}"
}
print_timings() {
    echo "setup-slurm: timings:"
    local t; for t in "${TIMINGS[@]}"; do echo "  $t"; done
    awk -v a="$T_START" -v b="$(now)" 'BEGIN{printf "  %-22s %6.1fs\n", "total", b-a}'
}

[ "$(id -u)" = 0 ] || die "must run as root"

# Two concurrent runs must not both start daemons.
exec 9>"$LOCK"
flock -w 600 9 || die "another setup-slurm.sh holds $LOCK for more than 600 s"

# --- 1. packages ---------------------------------------------------------------------
PKGS=(munge slurmctld slurmd slurm-client)
step_start "packages installed"
missing=()
for p in "${PKGS[@]}"; do
    # dpkg status, not just the binary: a binary exists mid-install, the status only after.
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" = 0 ]; then
    step_end "already installed"
else
    echo "setup-slurm:    apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 \
        || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
    # Install the whole set (not only the missing ones) so versions stay consistent. The
    # slurm-wlm metapackage would pull ~43 packages; these 4 need ~8.
    echo "setup-slurm:    apt-get install ${PKGS[*]} (missing: ${missing[*]}; log: $APT_LOG)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${PKGS[@]}" >>"$APT_LOG" 2>&1 \
        || { tail -n 30 "$APT_LOG" >&2; die "apt-get install ${PKGS[*]} failed"; }
    step_end "installed $(dpkg-query -W -f='${Version}' slurmctld)"
fi
for b in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd; do
    [ -x "$b" ] || die "$b missing after installing ${PKGS[*]}"
done
for b in munge unmunge scontrol sinfo sbatch; do
    command -v "$b" >/dev/null 2>&1 || die "$b not on PATH after installing ${PKGS[*]}"
done
getent passwd slurm >/dev/null || die "user slurm missing (created by the slurm packages)"
getent passwd munge >/dev/null || die "user munge missing (created by the munge package)"

# --- 2. slurm.conf -------------------------------------------------------------------
step_start "slurm.conf"
NODE=$(hostname -s)
[ -n "$NODE" ] || die "hostname -s is empty"
CPUS=$(nproc)
TOTAL_MB=$(free -m | awk '/^Mem:/{print $2}')
[ -n "$TOTAL_MB" ] && [ "$TOTAL_MB" -gt 0 ] || die "cannot read total memory from free -m"
# Above what slurmd detects the node is drained ("Low RealMemory"): stay 5% below.
MEM_MB=$(( TOTAL_MB * 95 / 100 ))
want=$(cat <<EOF
ClusterName=repro-test
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
)
WANT_SHA=$(printf '%s\n' "$want" | sha256sum | cut -d' ' -f1)
CONF_CHANGED=0
if [ -f "$CONF" ] && [ "$(sha256sum <"$CONF" | cut -d' ' -f1)" = "$WANT_SHA" ]; then
    step_end "unchanged: $NODE, CPUs=$CPUS, RealMemory=$MEM_MB"
else
    mkdir -p "$(dirname "$CONF")"
    if [ -f "$CONF" ]; then
        echo "setup-slurm:    $CONF differs from the wanted config; rewriting (diff wanted/old):"
        diff <(printf '%s\n' "$want") "$CONF" | sed 's/^/setup-slurm:      /' || true
    fi
    tmp=$(mktemp "$CONF.XXXXXX")
    printf '%s\n' "$want" >"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$CONF"      # atomic: daemons never read a half-written file
    CONF_CHANGED=1
    step_end "written: $NODE, CPUs=$CPUS, RealMemory=$MEM_MB (of $TOTAL_MB MB)"
fi

# --- 3. directories ------------------------------------------------------------------
step_start "directories"
install -d -m 755 -o slurm -g slurm /var/spool/slurmctld "$LOG_DIR"
install -d -m 755 -o root -g root /var/spool/slurmd
install -d -m 755 -o munge -g munge /run/munge
# The munge package creates the key; recreate it if someone removed it.
if [ ! -s /etc/munge/munge.key ]; then
    echo "setup-slurm:    /etc/munge/munge.key missing; creating it"
    install -d -m 700 -o munge -g munge /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey --create failed"
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
fi
step_end

# --- helpers for the daemons ---------------------------------------------------------
# alive PID: the process exists and is not a zombie (a zombie keeps /proc/PID until reaped,
# which never happens when PID 1 does not reap, e.g. in a container).
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [ -n "$st" ] && [ "$st" != Z ]
}
# pid_of NAME PIDFILE: print the pid in PIDFILE if that process is alive and is NAME.
pid_of() {
    local pid
    [ -s "$2" ] || return 1
    pid=$(tr -dc '0-9' <"$2")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && alive "$pid" && echo "$pid"
}
# clear_stale NAME PIDFILE: remove PIDFILE unless it names a live NAME process.
clear_stale() {
    if [ -e "$2" ] && ! pid_of "$1" "$2" >/dev/null; then
        echo "setup-slurm:    removing stale $2"
        rm -f "$2"
    fi
}
# stop_daemon NAME PIDFILE: TERM the process named in PIDFILE (only that pid), wait <= 15 s.
stop_daemon() {
    local pid
    pid=$(pid_of "$1" "$2") || { clear_stale "$1" "$2"; return 0; }
    echo "setup-slurm:    stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "setup-slurm:    $1 (pid $pid) ignored TERM for 15 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$2"
}
# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
    local n=$(( $1 * 10 )); shift
    for _ in $(seq 1 "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# start_daemon NAME LOG CMD...: run a self-daemonising CMD (which logs to LOG itself).
# Startup errors printed before it daemonises are caught in a temp file: redirecting to
# LOG would create LOG as root, which munged/slurmctld (not root) then cannot open.
start_daemon() {
    local name=$1 log=$2 out; shift 2
    echo "setup-slurm:    starting $name (log: $log)"
    out=$(mktemp)
    # 9>&-: the daemon must not inherit (and hold forever) the lock of this script.
    if ! "$@" </dev/null >"$out" 2>&1 9>&-; then
        cat "$out" >&2; rm -f "$out"
        tail -n 30 "$log" >&2 2>/dev/null || true
        die "$name failed to start"
    fi
    rm -f "$out"
}
log_tails() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [ -f "$f" ] || continue
        echo "---- last lines of $f ----" >&2
        tail -n 20 "$f" >&2 || true
    done
}
munge_ok()   { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_ok()    { scontrol ping 2>/dev/null | grep -q ' is UP'; }
slurmd_ok()  { scontrol show slurmd >/dev/null 2>&1; }

# --- 4. daemons ----------------------------------------------------------------------
step_start "daemons running"
started=()
# munged
if munge_ok; then
    :
else
    # A live munged that does not answer is wedged: replace it.
    stop_daemon munged "$MUNGE_PID"
    clear_stale munged "$MUNGE_PID"
    start_daemon munged /var/log/munge/munged.log runuser -u munge -- /usr/sbin/munged
    wait_for 10 munge_ok || { log_tails; die "munged started but 'munge -n | unmunge' fails"; }
    started+=(munged)
fi

# A new slurm.conf (or daemons started by this script from an older one) needs a restart
# of slurmctld and slurmd: node CPUs/RealMemory are only re-read at startup.
RESTART=0
if [ "$CONF_CHANGED" = 1 ]; then
    RESTART=1
elif [ -s "$STATE" ] && [ "$(cat "$STATE")" != "$WANT_SHA" ]; then
    RESTART=1
fi
if [ "$RESTART" = 1 ] && { pid_of slurmctld "$CTLD_PID" >/dev/null || pid_of slurmd "$SLURMD_PID" >/dev/null; }; then
    echo "setup-slurm:    slurm.conf changed; restarting slurmctld and slurmd"
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
fi

# slurmctld: give a live one a few seconds to answer (it may be starting up) before
# replacing it; slurmctld also kills an older instance named in its pid file itself.
if ! ctld_ok; then
    if pid_of slurmctld "$CTLD_PID" >/dev/null && wait_for 5 ctld_ok; then
        :
    else
        stop_daemon slurmctld "$CTLD_PID"
        clear_stale slurmctld "$CTLD_PID"
        start_daemon slurmctld "$LOG_DIR/slurmctld.log" /usr/sbin/slurmctld
        wait_for 30 ctld_ok || { log_tails; die "slurmctld started but 'scontrol ping' is not UP within 30 s"; }
        started+=(slurmctld)
    fi
fi
# slurmd
if ! slurmd_ok; then
    if pid_of slurmd "$SLURMD_PID" >/dev/null && wait_for 5 slurmd_ok; then
        :
    else
        stop_daemon slurmd "$SLURMD_PID"
        clear_stale slurmd "$SLURMD_PID"
        start_daemon slurmd "$LOG_DIR/slurmd.log" /usr/sbin/slurmd
        wait_for 30 slurmd_ok || { log_tails; die "slurmd started but 'scontrol show slurmd' fails within 30 s"; }
        started+=(slurmd)
    fi
fi
if [ "${#started[@]}" -gt 0 ]; then
    echo "$WANT_SHA" >"$STATE"
    step_end "started ${started[*]}"
else
    [ -s "$STATE" ] || echo "$WANT_SHA" >"$STATE"
    step_end "already running"
fi

# --- 5. node ready -------------------------------------------------------------------
step_start "node ready"
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }
resumed=0
ready=0
deadline=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    st=$(node_state)
    case "$st" in
        # A trailing '*' (idle*, ...) means "not responding": not ready yet.
        idle|mix|mixed|alloc|allocated|comp|completing) ready=1; break ;;
        drain*|down*|fail*)
            # A node drained by an earlier bad config (e.g. RealMemory too high) stays
            # drained after the config is fixed.
            if [ "$resumed" = 0 ]; then
                echo "setup-slurm:    node $NODE is $st; resuming"
                sinfo -R -h -n "$NODE" -o '%E' 2>/dev/null | sed 's/^/setup-slurm:      reason: /' || true
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "---- sinfo -R ----" >&2; sinfo -R >&2 || true
    echo "---- scontrol show node $NODE ----" >&2; scontrol show node "$NODE" >&2 || true
    log_tails
    die "node $NODE not idle/mix/alloc/comp within 60 s (state: ${st:-none})"
fi
step_end "$NODE $st"

# --- 6. verify with real jobs --------------------------------------------------------
# `sbatch --wait` polls at 2, 8, 32 s; polling scontrol ourselves is much faster.
step_start "probe jobs"
PROBE=$(mktemp -d /tmp/repro-slurm-probe.XXXXXX)
chmod 755 "$PROBE"
trap 'rm -rf "$PROBE"' EXIT
# --priority=TOP (root is a Slurm administrator): on a node busy with other jobs the probes
# go first instead of queueing behind a long array; they still wait for a free CPU.
job=$(sbatch --parsable --priority=TOP -J repro-ci-probe --chdir=/tmp -o "$PROBE/single-%j.out" \
        --wrap 'echo ok' 2>&1) || die "sbatch failed: $job"
arr=$(sbatch --parsable --priority=TOP -J repro-ci-probe-array --chdir=/tmp --array=0-2 \
        -o "$PROBE/array-%a.out" --wrap 'echo "task $SLURM_ARRAY_TASK_ID"' 2>&1) \
    || die "sbatch --array=0-2 failed: $arr"
job=${job%%;*}; arr=${arr%%;*}      # --parsable prints "id[;cluster]"
echo "setup-slurm:    submitted job $job and array $arr (0-2)"
# job_states ID: one JobState per record (an array gives one record per split-off task).
job_states() { scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
done_ok=0
deadline=$(( $(date +%s) + PROBE_TIMEOUT ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    s1=$(job_states "$job"); s2=$(job_states "$arr")
    if printf '%s\n' "$s1" "$s2" | grep -Eq '^(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$'; then
        scontrol show job -o "$job" >&2 || true; scontrol show job -o "$arr" >&2 || true
        die "probe job failed"
    fi
    if [ "$s1" = COMPLETED ] && [ "$(printf '%s\n' "$s2" | grep -c '^COMPLETED$')" = 3 ] \
            && [ "$(printf '%s\n' "$s2" | wc -l)" = 3 ]; then
        done_ok=1; break
    fi
    sleep 0.1
done
if [ "$done_ok" != 1 ]; then
    scontrol show job -o "$job" >&2 || true; scontrol show job -o "$arr" >&2 || true
    squeue >&2 || true
    scancel "$job" "$arr" 2>/dev/null || true
    log_tails
    die "probe jobs not COMPLETED within $PROBE_TIMEOUT s (node busy? see squeue above; env REPRO_CI_SLURM_PROBE_TIMEOUT)"
fi
out=$(cat "$PROBE/single-$job.out" 2>/dev/null || true)
[ "$out" = ok ] || die "probe job $job output is '$out', expected 'ok'"
for i in 0 1 2; do
    out=$(cat "$PROBE/array-$i.out" 2>/dev/null || true)
    [ "$out" = "task $i" ] || die "array task ${arr}_$i output is '$out', expected 'task $i'"
done
step_end "job $job + array $arr (3 tasks) COMPLETED, outputs ok"

print_timings
echo "slurm ready: $NODE ($CPUS cpus)"
