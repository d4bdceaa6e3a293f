#!/usr/bin/env bash
# Ensure the container runtimes the slurm target's --container tests use run here:
#
#   1. Charliecloud (Debian's charliecloud: ch-convert, ch-run) and Podman (podman, with
#      catatonit for --init) installed  (apt-get only for what is missing)
#   2. Podman configured so that `podman run` works in these VMs: the OCI runtime's rlimits
#      must not exceed what conmon has (without this podman asks for nofile=1048576 and
#      crun/runc fail with "setrlimit RLIMIT_NOFILE: Operation not permitted"), and runc
#      instead of crun (crun refuses the hybrid cgroup layout here: "cgroups in hybrid mode
#      not supported"). Written to /etc/containers/containers.conf.d/50-repro-ci.conf only,
#      the packaged containers.conf untouched.
#   3. checked: podman runs a command in the Docker engine's base image (the one
#      scripts/ci/setup-docker.sh builds), with no network; ch-run starts.
#
# Idempotent; about a second when already in place. Needs root to install.
# Prints `runtimes ready: ...` last; exits non-zero with a message on failure.
set -euo pipefail

APT_LOG=/var/log/repro-ci-apt.log
IMAGE="${REPRO_CI_BASE_IMAGE:-repro-base:bookworm-py3.11}"
CONF=/etc/containers/containers.conf.d/50-repro-ci.conf
die() { echo "setup-runtimes: ERROR: $*" >&2; exit 1; }

missing=()
for pkg in charliecloud podman catatonit; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "${missing[*]} missing and installing needs root"
    echo "setup-runtimes: apt-get install ${missing[*]} (log: $APT_LOG)"
    install() {
        NEEDRESTART_SUSPEND=1 DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1
    }
    if ! install; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 \
            || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
        install || { tail -n 30 "$APT_LOG" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
else
    echo "setup-runtimes: charliecloud, podman, catatonit already installed"
fi
command -v ch-run >/dev/null && command -v ch-convert >/dev/null || die "ch-run/ch-convert not on PATH"
command -v podman >/dev/null || die "podman not on PATH"
command -v runc >/dev/null || die "runc not on PATH (it comes with docker.io: run setup-docker.sh first)"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no Docker image $IMAGE (run setup-docker.sh first)"

# Podman: the limits conmon gives the OCI runtime (what it may set without privileges).
if [ ! -f "$CONF" ]; then
    nofile=$(ulimit -Hn)
    nproc=32768  # podman's own limit for conmon here (see the comment above)
    [ "$(ulimit -Hu)" != unlimited ] && [ "$(ulimit -Hu)" -lt "$nproc" ] && nproc=$(ulimit -Hu)
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<CONF
# Written by repro's scripts/ci/setup-runtimes.sh: podman run in VMs without CAP_SYS_RESOURCE.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
CONF
    echo "setup-runtimes: wrote $CONF"
fi

# Podman runs the base image (loaded from the Docker engine once).
id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
if ! podman image exists "$id"; then
    docker save "$id" | podman load -q >/dev/null || die "podman load of $IMAGE failed"
fi
out=$(podman run --rm --network none --read-only --cap-drop all "$id" \
    python3 -c 'print("podman ok")' 2>&1) || die "podman run failed: $out"

# Charliecloud: ch-run starts (the integration tests convert and run a real image; converting
# one here too would cost a minute on a fresh machine).
chv=$(USER="${USER:-$(id -un)}" ch-run --version 2>&1 | head -n1) || die "ch-run does not start: $chv"

echo "runtimes ready: charliecloud $chv, $(podman --version), $out"
