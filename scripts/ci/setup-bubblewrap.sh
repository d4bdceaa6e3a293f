#!/usr/bin/env bash
# Ensure bubblewrap (bwrap) is installed and sandboxes a command the way repro's local and
# slurm targets do (repro/execution/sandbox.py), as root in this machine's container.
#
#   1. bubblewrap installed  (apt-get update + install only if it is missing)
#   2. the probe repro makes: --unshare-all --die-with-parent --new-session --cap-drop ALL
#      --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp true
#   3. inside: the root is read-only, the network unreachable, /root and /tmp hidden
#
# Idempotent; warm run well under a second. Needs root to install.
# Prints `bubblewrap ready: PATH (VERSION)` last; exits non-zero with a message on failure.
set -euo pipefail

APT_LOG=/var/log/repro-ci-apt.log
die() { echo "setup-bubblewrap: ERROR: $*" >&2; exit 1; }

if [ "$(dpkg-query -W -f='${Status}' bubblewrap 2>/dev/null)" = "install ok installed" ] \
        && command -v bwrap >/dev/null 2>&1; then
    echo "setup-bubblewrap: already installed"
else
    [ "$(id -u)" = 0 ] || die "bubblewrap is missing and installing it needs root"
    echo "setup-bubblewrap: apt-get install bubblewrap (log: $APT_LOG)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            bubblewrap >>"$APT_LOG" 2>&1; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 \
            || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            bubblewrap >>"$APT_LOG" 2>&1 || { tail -n 30 "$APT_LOG" >&2; die "apt-get install bubblewrap failed"; }
    fi
fi
BWRAP=$(command -v bwrap) || die "bwrap not on PATH after install"
VERSION=$("$BWRAP" --version 2>/dev/null | head -n1)

FLAGS=(--die-with-parent --new-session --unshare-all --cap-drop ALL
       --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /root)
"$BWRAP" "${FLAGS[@]}" true || die "bwrap cannot unshare every namespace here (see docs/security.md)"
# shellcheck disable=SC2016
"$BWRAP" "${FLAGS[@]}" /bin/sh -c '
    if touch /repro-bwrap-probe 2>/dev/null; then echo "root is writable" >&2; exit 1; fi
    if [ -n "$(ls -A /root)" ]; then echo "/root is visible" >&2; exit 1; fi
    exit 0' || die "the sandbox does not hide what it must"
if command -v python3 >/dev/null 2>&1; then
    "$BWRAP" "${FLAGS[@]}" python3 -c '
import socket, sys
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3)
except OSError:
    sys.exit(0)
sys.exit("the network is reachable in the sandbox")' || die "network not unshared"
fi
echo "bubblewrap ready: $BWRAP ($VERSION)"
