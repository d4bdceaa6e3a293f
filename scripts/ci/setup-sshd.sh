#!/usr/bin/env bash
# Ensure an sshd on 127.0.0.1 that plays "the cluster's login node" for the --host tests
# (tests/integration/test_remote.py): its own port, host key, test key and unprivileged user,
# who can submit to this machine's one-node Slurm (setup-slurm.sh runs first).
#
#   1. openssh-server installed      (apt only when /usr/sbin/sshd is missing)
#   2. user repro-ssh                 home /home/repro-ssh, shell bash, no password (not
#                                     locked: sshd without PAM refuses locked accounts)
#   3. /etc/repro-ci-sshd/            sshd_config, host key, the test client key (root only),
#                                     authorized_keys, known_hosts, ssh_config (Host repro-ci);
#                                     a second key, id_noslurm, logs in with PATH=/nonexistent
#                                     ("a host without Slurm")
#   4. sshd running                   /usr/sbin/sshd -f sshd_config (pid /run/repro-ci-sshd.pid),
#                                     started only when a login does not work; no systemd
#   5. verify                         ssh -F ssh_config repro-ci: the user, sinfo (Slurm
#                                     reached as that user)
#
# Idempotent; warm ~0.2 s, cold one apt install (~5 s). Needs root. Env: REPRO_CI_SSHD_PORT
# (default 22122). Prints `sshd ready: repro-ssh@127.0.0.1:PORT` last; exits non-zero with
# `ERROR: ...` on failure. Leaves sshd running (stop it: kill "$(cat /run/repro-ci-sshd.pid)").
set -euo pipefail

PORT=${REPRO_CI_SSHD_PORT:-22122}
USER_NAME=repro-ssh
DIR=/etc/repro-ci-sshd
PID=/run/repro-ci-sshd.pid
APT_LOG=/var/log/repro-ci-apt.log
export NEEDRESTART_SUSPEND=1
die() { echo "setup-sshd: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ ! -x /usr/sbin/sshd ]; then
    echo "setup-sshd: apt-get install openssh-server (log: $APT_LOG)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends openssh-server openssh-client >>"$APT_LOG" 2>&1; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 \
            || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends openssh-server openssh-client >>"$APT_LOG" 2>&1 \
            || { tail -n 30 "$APT_LOG" >&2; die "apt-get install openssh-server failed"; }
    fi
fi

if ! id -u "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$USER_NAME"
fi
usermod -p '*' "$USER_NAME"  # no password, and not locked ('!')
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)

mkdir -p "$DIR" /run/sshd
chmod 755 "$DIR"
[ -f "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C repro-ci-host -f "$DIR/ssh_host_ed25519_key"
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C repro-ci-client -f "$DIR/id_ed25519"
[ -f "$DIR/id_noslurm" ] || ssh-keygen -q -t ed25519 -N '' -C repro-ci-noslurm -f "$DIR/id_noslurm"
chmod 600 "$DIR/id_ed25519" "$DIR/id_noslurm" "$DIR/ssh_host_ed25519_key"
{
    cat "$DIR/id_ed25519.pub"
    printf 'environment="PATH=/nonexistent" %s\n' "$(cat "$DIR/id_noslurm.pub")"
} > "$DIR/authorized_keys"
chmod 644 "$DIR/authorized_keys"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" \
    > "$DIR/known_hosts"
cat > "$DIR/sshd_config.new" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $PID
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers $USER_NAME
X11Forwarding no
PrintMotd no
# a cluster "without Slurm": the second test key logs in with a PATH that has no sbatch
PermitUserEnvironment PATH
# connection sharing (ControlMaster) multiplexes many sessions over one connection
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp internal-sftp
EOF
cat > "$DIR/ssh_config" <<EOF
Host repro-ci
    HostName 127.0.0.1
    Port $PORT
    User $USER_NAME
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
EOF
restart=0
if ! cmp -s "$DIR/sshd_config.new" "$DIR/sshd_config" 2>/dev/null; then
    mv "$DIR/sshd_config.new" "$DIR/sshd_config"
    restart=1
else
    rm -f "$DIR/sshd_config.new"
fi
/usr/sbin/sshd -t -f "$DIR/sshd_config" || die "sshd rejects $DIR/sshd_config"

login() {
    ssh -F "$DIR/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 -o ControlMaster=no \
        -o ControlPath=none repro-ci "$@"
}
running() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }
if running && [ "$restart" = 1 ]; then
    kill "$(cat "$PID")"; sleep 0.2
fi
if ! running || ! login true >/dev/null 2>&1; then
    if running; then kill "$(cat "$PID")"; sleep 0.2; fi
    rm -f "$PID"
    /usr/sbin/sshd -f "$DIR/sshd_config" -E /var/log/repro-ci-sshd.log \
        || die "sshd did not start (see /var/log/repro-ci-sshd.log)"
    for _ in $(seq 50); do login true >/dev/null 2>&1 && break; sleep 0.1; done
fi
who=$(login id -un) || { tail -n 20 /var/log/repro-ci-sshd.log >&2; die "cannot log in as $USER_NAME"; }
[ "$who" = "$USER_NAME" ] || die "logged in as $who, not $USER_NAME"
login 'test -w "$HOME"' || die "$USER_NAME cannot write its home $HOME_DIR"
if command -v sinfo >/dev/null 2>&1; then
    state=$(login sinfo -h -o %T | head -n1) || die "$USER_NAME cannot reach Slurm (sinfo)"
    echo "setup-sshd: Slurm as $USER_NAME: $state"
fi
echo "sshd ready: $USER_NAME@127.0.0.1:$PORT"
