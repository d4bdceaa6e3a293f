#!/usr/bin/env bash
# Ensure a working Docker engine and a local Python base image on a Debian 12 machine.
#
#   1. docker.io installed        (apt-get update + install only if dockerd is missing)
#   2. dockerd running            (started detached if `docker info` fails; waits <= 60 s)
#   3. base image present         ($REPRO_CI_BASE_IMAGE, default repro-base:bookworm-py3.11)
#        - `docker image inspect` finds it            -> nothing to do
#        - cached rootfs tarball in $REPRO_CI_CACHE_DIR -> `docker import` (seconds)
#        - otherwise debootstrap a minbase bookworm rootfs with python3/venv/pip,
#          cache it as a tarball, import it
#   4. verify the image (python3 --version; after a fresh build/import also useradd and
#      `python3 -m venv` with pip)
#
# Idempotent; a warm run takes about a second. Needs root. No registry access needed.
# Env: REPRO_CI_BASE_IMAGE, REPRO_CI_CACHE_DIR (default /var/cache/repro-ci),
#      REPRO_CI_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#      REPRO_CI_VERIFY=full (always run the full in-image check).
set -euo pipefail

IMAGE=${REPRO_CI_BASE_IMAGE:-repro-base:bookworm-py3.11}
CACHE_DIR=${REPRO_CI_CACHE_DIR:-/var/cache/repro-ci}
MIRROR=${REPRO_CI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# passwd (useradd) is Priority: required and so already in minbase; listed explicitly so the
# image keeps it even if that ever changes.
INCLUDE=python3,python3-venv,python3-pip,passwd
DOCKERD_LOG=/var/log/dockerd.log
APT_LOG=/var/log/repro-ci-apt.log

# The cache key covers everything that determines the rootfs content.
key=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" minbase | sha256sum | cut -c1-12)
TARBALL="$CACHE_DIR/rootfs-$SUITE-minbase-$key.tar"

die() { echo "setup-docker: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
T_START=$(now)
TIMINGS=()
step_start() { STEP_NAME=$1; STEP_T0=$(now); echo "setup-docker: == $1"; }
step_end() {
    local dt
    dt=$(awk -v a="$STEP_T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
    TIMINGS+=("$(printf '%-28s %6ss' "$STEP_NAME" "$dt")")
    echo "setup-docker:    ${STEP_NAME}: ${dt}s${1:+ ($1)}"
}
print_timings() {
    echo "setup-docker: timings:"
    local t; for t in "${TIMINGS[@]}"; do echo "  $t"; done
    awk -v a="$T_START" -v b="$(now)" 'BEGIN{printf "  %-28s %6.1fs\n", "total", b-a}'
}

[ "$(id -u)" = 0 ] || die "must run as root"

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        echo "setup-docker:    apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    echo "setup-docker:    apt-get install $* (log: $APT_LOG)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" \
            >>"$APT_LOG" 2>&1; then
        tail -n 30 "$APT_LOG" >&2
        die "apt-get install $* failed"
    fi
}

# --- 1. engine installed -------------------------------------------------------------
# Check for dockerd, not docker: a machine may carry a standalone docker CLI
# (/usr/local/bin/docker) without any engine.
step_start "docker.io installed"
if command -v dockerd >/dev/null 2>&1 && command -v containerd >/dev/null 2>&1 \
        && command -v runc >/dev/null 2>&1; then
    step_end "already installed"
else
    # --no-install-recommends skips needrestart, git, cgroupfs-mount (cgroups are already
    # mounted on these kernels) and apparmor; apparmor is only needed when the kernel has it
    # enabled (then dockerd loads its profile with apparmor_parser). iptables (default
    # bridge) is a hard dependency.
    pkgs=(docker.io xz-utils)
    if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; then
        pkgs+=(apparmor)
    fi
    apt_install "${pkgs[@]}"
    step_end "installed"
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI after installing docker.io"

# --- 2. daemon running ---------------------------------------------------------------
step_start "dockerd running"
if docker info >/dev/null 2>&1; then
    step_end "already running"
else
    echo "setup-docker:    starting dockerd (log: $DOCKERD_LOG)"
    setsid dockerd --host unix:///var/run/docker.sock >"$DOCKERD_LOG" 2>&1 </dev/null &
    ok=0
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.5
    done
    if [ "$ok" != 1 ]; then
        echo "---- last lines of $DOCKERD_LOG ----" >&2
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd did not answer 'docker info' within 60 s"
    fi
    step_end "started; storage driver $(docker info --format '{{.Driver}}' 2>/dev/null), cgroup v$(docker info --format '{{.CgroupVersion}}' 2>/dev/null)"
fi

# --- 3. base image -------------------------------------------------------------------
FRESH=0
step_start "base image present"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    step_end "$IMAGE exists"
else
    step_end "$IMAGE missing"
    mkdir -p "$CACHE_DIR"
    if [ ! -s "$TARBALL" ]; then
        step_start "debootstrap installed"
        if command -v debootstrap >/dev/null 2>&1; then
            step_end "already installed"
        else
            apt_install debootstrap
            step_end "installed"
        fi

        step_start "debootstrap rootfs"
        WORK=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
        # shellcheck disable=SC2064
        trap "rm -rf '$WORK'" EXIT
        if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$WORK/rootfs" "$MIRROR" \
                >"$WORK/debootstrap.log" 2>&1; then
            tail -n 30 "$WORK/debootstrap.log" >&2 || true
            tail -n 30 "$WORK/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
            die "debootstrap failed"
        fi
        # Slim the rootfs and drop host-specific files.
        rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/* \
               "$WORK"/rootfs/var/log/* "$WORK"/rootfs/tmp/* 2>/dev/null || true
        : >"$WORK/rootfs/etc/hostname" || true
        step_end "$(du -sh "$WORK/rootfs" | cut -f1)"

        step_start "cache rootfs tarball"
        tar --numeric-owner -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" . || die "tar of rootfs failed"
        mv "$WORK/rootfs.tar" "$TARBALL"      # atomic: a half-written tarball is never cached
        rm -rf "$WORK"; trap - EXIT
        step_end "$TARBALL ($(du -h "$TARBALL" | cut -f1))"
    fi

    step_start "docker import"
    if ! docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            --message "repro CI base: debootstrap $SUITE minbase + $INCLUDE" \
            "$TARBALL" "$IMAGE" >/dev/null; then
        # A corrupt cached tarball must not poison every later run.
        rm -f "$TARBALL"
        die "docker import of $TARBALL failed (cached tarball removed; rerun to rebuild)"
    fi
    step_end "from $TARBALL"
    FRESH=1
fi

# --- 4. verify -----------------------------------------------------------------------
step_start "verify image"
if [ "$FRESH" = 1 ] || [ "${REPRO_CI_VERIFY:-}" = full ]; then
    out=$(docker run --rm --network none "$IMAGE" sh -ec '
        python3 --version
        command -v useradd >/dev/null || { echo "useradd missing" >&2; exit 1; }
        useradd -m ci-probe && su ci-probe -s /bin/sh -c "true"
        python3 -m venv /tmp/venv
        /tmp/venv/bin/python -m pip --version >/dev/null
        echo "useradd ok, venv+pip ok"
    ' 2>&1) || { echo "$out" >&2; die "image $IMAGE failed verification"; }
else
    out=$(docker run --rm --network none "$IMAGE" python3 --version 2>&1) \
        || { echo "$out" >&2; die "image $IMAGE cannot run python3"; }
fi
echo "$out" | sed 's/^/setup-docker:    /'
echo "$out" | grep -q '^Python 3\.11\.' || die "expected Python 3.11.x in $IMAGE, got: $out"
step_end "$(echo "$out" | head -n1)"

print_timings
echo "docker ready: $IMAGE"
