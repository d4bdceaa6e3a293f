#!/usr/bin/env bash
# Ensure a second one-node Slurm cluster WITH accounting (slurmdbd + MariaDB), beside the
# cluster without accounting that setup-slurm.sh keeps (run that script first: this one
# reuses its packages, munged and node). Recipe and reasons: docs/slurm-accounting.md.
#
# Why a second cluster and not accounting switched on in the first: the first cluster is
# the "no accounting" case the tests need (sacct: "Slurm accounting storage is disabled"),
# setup-slurm.sh rewrites its slurm.conf whenever it differs from its own, and it is shared
# by running jobs. This one has its own config directory, ports, spool, pid and log files,
# and is reached with SLURM_CONF=/etc/slurm-acct/slurm.conf:
#
#   cluster "repro-acct"  slurmctld :6917, slurmd :6918 (node = `hostname -s`), slurmdbd :6919
#   accounting            accounting_storage/slurmdbd -> MariaDB database slurm_acct_db
#                         (local socket only, --skip-networking; the slurm user logs in
#                         by unix_socket authentication: no password anywhere)
#   measurement           jobacct_gather/cgroup, proctrack/cgroup, task/cgroup with
#                         ConstrainRAMSpace=yes: --mem is enforced (OUT_OF_MEMORY)
#
#   1. packages           mariadb-server slurmdbd (apt only when one is missing)
#   2. MariaDB            data directory initialised, mariadbd running, user slurm@localhost
#   3. configs            /etc/slurm-acct/{slurm,slurmdbd,cgroup}.conf, rewritten only when
#                         they differ (then the daemons started from the old ones restart)
#   4. daemons            slurmdbd, cluster registered (sacctmgr), slurmctld, slurmd
#   5. verify             a 2-task array job, then its records read back with sacct
#
# Idempotent; a warm run takes a few seconds (mostly the probe job and sacct's flush).
# Needs root. Prints `slurm accounting ready: ...` last; `ERROR: ...` and non-zero on failure.
set -euo pipefail

DIR=/etc/slurm-acct
CONF=$DIR/slurm.conf
DBD_CONF=$DIR/slurmdbd.conf
CG_CONF=$DIR/cgroup.conf
LOG_DIR=/var/log/slurm
APT_LOG=/var/log/repro-ci-apt.log
CTLD_PID=/run/slurmctld-acct.pid
SLURMD_PID=/run/slurmd-acct.pid
DBD_PID=/run/slurmdbd-acct.pid
DB_PID=/run/mysqld/mysqld.pid
STATE=/run/repro-ci-slurm-acct.sha256
LOCK=/run/repro-ci-slurm-acct.lock
CLUSTER=repro-acct
export NEEDRESTART_SUSPEND=1
export SLURM_CONF=$CONF

die() { echo "setup-slurm-accounting: ERROR: $*" >&2; exit 1; }
say() { echo "setup-slurm-accounting: $*"; }
[ "$(id -u)" = 0 ] || die "must run as root"
exec 9>"$LOCK"
flock -w 600 9 || die "another setup-slurm-accounting.sh holds $LOCK"
T0=$(date +%s.%N)

for b in /usr/sbin/slurmctld /usr/sbin/slurmd sbatch; do
    command -v "$b" >/dev/null 2>&1 || die "$b missing: run scripts/ci/setup-slurm.sh first"
done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged does not answer: run scripts/ci/setup-slurm.sh first"

# --- 1. packages ---------------------------------------------------------------------
PKGS=(mariadb-server slurmdbd)
missing=()
for p in "${PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${PKGS[*]} (missing: ${missing[*]}; log: $APT_LOG)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 \
        || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${PKGS[@]}" >>"$APT_LOG" 2>&1 \
        || { tail -n 30 "$APT_LOG" >&2; die "apt-get install ${PKGS[*]} failed"; }
fi
for b in /usr/sbin/mariadbd /usr/sbin/slurmdbd mariadb sacct sacctmgr; do
    command -v "$b" >/dev/null 2>&1 || die "$b missing after installing ${PKGS[*]}"
done

# --- helpers (as in setup-slurm.sh) --------------------------------------------------
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [ -n "$st" ] && [ "$st" != Z ]
}
pid_of() {
    local pid
    [ -s "$2" ] || return 1
    pid=$(tr -dc '0-9' <"$2")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && alive "$pid" && echo "$pid"
}
stop_daemon() {
    local pid
    pid=$(pid_of "$1" "$2") || { rm -f "$2"; return 0; }
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; }
    rm -f "$2"
}
wait_for() {
    local n=$(( $1 * 10 )); shift
    for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
start_daemon() {
    local name=$1 log=$2 out; shift 2
    say "starting $name (log: $log)"
    out=$(mktemp)
    if ! "$@" </dev/null >"$out" 2>&1 9>&-; then
        cat "$out" >&2; rm -f "$out"; tail -n 30 "$log" >&2 2>/dev/null || true
        die "$name failed to start"
    fi
    rm -f "$out"
}
tails() {
    local f
    for f in "$LOG_DIR"/slurmdbd-acct.log "$LOG_DIR"/slurmctld-acct.log "$LOG_DIR"/slurmd-acct.log /var/log/mysql-acct.log; do
        [ -f "$f" ] && { echo "---- $f ----" >&2; tail -n 20 "$f" >&2; }
    done
    return 0
}

# --- 2. MariaDB ----------------------------------------------------------------------
db_ok() { mariadb-admin --protocol=socket ping >/dev/null 2>&1; }
install -d -m 755 -o mysql -g mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
    say "initialising /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/var/log/mysql-acct-init.log 2>&1 \
        || { tail -n 20 /var/log/mysql-acct-init.log >&2; die "mariadb-install-db failed"; }
fi
if ! db_ok; then
    [ -e "$DB_PID" ] && ! pid_of mariadbd "$DB_PID" >/dev/null && rm -f "$DB_PID"
    say "starting mariadbd (socket only; log: /var/log/mysql-acct.log)"
    # mariadbd does not daemonise itself: detach it (setsid, no inherited lock or stdio).
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --pid-file="$DB_PID" \
        --log-error=/var/log/mysql-acct.log </dev/null >/dev/null 2>&1 9>&- &
    wait_for 60 db_ok || { tails; die "mariadbd does not answer within 60 s"; }
fi
mariadb --protocol=socket -e "
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" \
    || die "cannot create the slurm database user"

# --- 3. configs ----------------------------------------------------------------------
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(free -m | awk '/^Mem:/{print $2}') * 95 / 100 ))
slurm_conf=$(cat <<EOF
ClusterName=${CLUSTER}
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld-acct
SlurmdSpoolDir=/var/spool/slurmd-acct
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld-acct.log
SlurmdLogFile=${LOG_DIR}/slurmd-acct.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=1
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6919
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1024
EOF
)
dbd_conf=$(cat <<EOF
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6919
SlurmUser=slurm
AuthType=auth/munge
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
PidFile=${DBD_PID}
LogFile=${LOG_DIR}/slurmdbd-acct.log
EOF
)
cg_conf=$(cat <<EOF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
EOF
)
# cgroup v2 machines (most current distributions) need the other plugin.
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cg_conf=${cg_conf/cgroup\/v1/cgroup\/v2}
install -d -m 755 "$DIR"
install -d -m 755 -o slurm -g slurm /var/spool/slurmctld-acct "$LOG_DIR"
install -d -m 755 /var/spool/slurmd-acct
write() {   # write FILE MODE OWNER CONTENT: atomically, only when it differs
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$4" ]; then
        local tmp; tmp=$(mktemp "$1.XXXXXX")
        printf '%s\n' "$4" >"$tmp"; chmod "$2" "$tmp"; chown "$3" "$tmp"; mv "$tmp" "$1"
        say "wrote $1"
    fi
}
write "$CONF" 644 root:root "$slurm_conf"
write "$CG_CONF" 644 root:root "$cg_conf"
write "$DBD_CONF" 600 slurm:slurm "$dbd_conf"   # slurmdbd refuses a readable one
WANT=$(cat "$CONF" "$CG_CONF" "$DBD_CONF" | sha256sum | cut -d' ' -f1)
if [ -s "$STATE" ] && [ "$(cat "$STATE")" != "$WANT" ]; then
    say "config changed; restarting this cluster's daemons"
    stop_daemon slurmd "$SLURMD_PID"; stop_daemon slurmctld "$CTLD_PID"; stop_daemon slurmdbd "$DBD_PID"
fi

# --- 4. daemons ----------------------------------------------------------------------
dbd_ok()    { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
ctld_ok()   { scontrol ping 2>/dev/null | grep -q ' is UP'; }
slurmd_ok() { scontrol show slurmd >/dev/null 2>&1; }
if ! dbd_ok; then
    stop_daemon slurmdbd "$DBD_PID"
    start_daemon slurmdbd "$LOG_DIR/slurmdbd-acct.log" /usr/sbin/slurmdbd
    wait_for 30 dbd_ok || { tails; die "slurmdbd started but sacctmgr gets no answer within 30 s"; }
fi
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
fi
if ! ctld_ok; then
    stop_daemon slurmctld "$CTLD_PID"
    start_daemon slurmctld "$LOG_DIR/slurmctld-acct.log" /usr/sbin/slurmctld
    wait_for 30 ctld_ok || { tails; die "slurmctld ($CLUSTER) not UP within 30 s"; }
fi
if ! slurmd_ok; then
    stop_daemon slurmd "$SLURMD_PID"
    start_daemon slurmd "$LOG_DIR/slurmd-acct.log" /usr/sbin/slurmd
    wait_for 30 slurmd_ok || { tails; die "slurmd ($CLUSTER) does not answer within 30 s"; }
fi
echo "$WANT" >"$STATE"
resumed=0
ready=0
for _ in $(seq 1 600); do
    st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1)
    case "$st" in
        idle|mix|mixed|alloc|allocated|comp|completing) ready=1; break ;;
        drain*|down*|fail*)
            [ "$resumed" = 0 ] && { scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; resumed=1; } ;;
    esac
    sleep 0.1
done
[ "$ready" = 1 ] || { sinfo -R >&2 || true; tails; die "node $NODE of $CLUSTER not ready (state: ${st:-none})"; }

# --- 5. verify: an array job, then its accounting ------------------------------------
PROBE=$(mktemp -d /tmp/repro-slurm-acct-probe.XXXXXX)
chmod 755 "$PROBE"
trap 'rm -rf "$PROBE"' EXIT
arr=$(sbatch --parsable --priority=TOP -J repro-ci-acct-probe --chdir=/tmp --array=0-1 --mem=64M \
        -o "$PROBE/%a.out" --wrap 'echo "task $SLURM_ARRAY_TASK_ID"' 2>&1) || die "sbatch failed: $arr"
arr=${arr%%;*}
ok=0
for _ in $(seq 1 600); do
    n=$(sacct -n -P -X -j "$arr" -o State 2>/dev/null | grep -c '^COMPLETED$' || true)
    [ "$n" = 2 ] && { ok=1; break; }
    sacct -n -P -X -j "$arr" -o State 2>/dev/null | grep -Eq '^(FAILED|CANCELLED|OUT_OF_MEMORY|NODE_FAIL)' \
        && { sacct -j "$arr" >&2; die "probe array $arr failed"; }
    sleep 0.1
done
[ "$ok" = 1 ] || { sacct -j "$arr" >&2 || true; scontrol show job -o "$arr" >&2 || true; tails; die "probe array $arr: sacct does not show 2 COMPLETED tasks within 60 s"; }
awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "setup-slurm-accounting: %.1fs\n", b-a}'
echo "slurm accounting ready: cluster $CLUSTER, node $NODE, SLURM_CONF=$CONF (probe array $arr)"
