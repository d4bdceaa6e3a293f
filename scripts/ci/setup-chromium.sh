#!/usr/bin/env bash
# Ensure headless Chromium is installed and can screenshot a local HTML file.
#
#   1. chromium installed   (apt-get update + install only if `chromium` is missing)
#   2. print its version
#   3. smoke test: render a tiny local HTML page to a PNG with the flags the project uses
#      (no network access attempted) and check the PNG is non-empty and really a PNG.
#
# Idempotent; a warm run takes a couple of seconds (the screenshot). Needs root to install.
# Prints `chromium ready: /path (version)` last; exits non-zero with a message on failure.
set -euo pipefail

APT_LOG=/var/log/repro-ci-apt.log
die() { echo "setup-chromium: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
T_START=$(now)
TIMINGS=()
step_start() { STEP_NAME=$1; STEP_T0=$(now); echo "setup-chromium: == $1"; }
step_end() {
    local dt
    dt=$(awk -v a="$STEP_T0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
    TIMINGS+=("$(printf '%-22s %6ss' "$STEP_NAME" "$dt")")
    echo "setup-chromium:    ${STEP_NAME}: ${dt}s${1:+ ($1)}"
}

# --- 1. installed --------------------------------------------------------------------
step_start "chromium installed"
# dpkg status rather than `command -v`: the binary exists mid-install (e.g. while another
# apt-get is still configuring it), the status only once it is fully installed.
if [ "$(dpkg-query -W -f='${Status}' chromium 2>/dev/null)" = "install ok installed" ] \
        && command -v chromium >/dev/null 2>&1; then
    step_end "already installed"
else
    [ "$(id -u)" = 0 ] || die "chromium is missing and installing it needs root"
    echo "setup-chromium:    apt-get update + install chromium (log: $APT_LOG)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$APT_LOG" 2>&1 || { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium >>"$APT_LOG" 2>&1 \
        || { tail -n 30 "$APT_LOG" >&2; die "apt-get install chromium failed"; }
    command -v chromium >/dev/null 2>&1 || die "chromium not on PATH after install"
    step_end "installed"
fi
CHROMIUM=$(command -v chromium)

# --- 2. version ----------------------------------------------------------------------
step_start "chromium version"
VERSION=$("$CHROMIUM" --version 2>/dev/null | head -n1) || die "'$CHROMIUM --version' failed"
echo "setup-chromium:    $VERSION"
step_end

# --- 3. screenshot smoke test --------------------------------------------------------
step_start "headless screenshot"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat >"$TMP/page.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>repro CI probe</title></head>
<body style="background:#fff"><h1 style="color:#036">repro chromium probe</h1>
<table border="1"><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
</body></html>
HTML
mkdir -p "$TMP/profile"
# timeout: a headless Chromium that hangs (e.g. waiting on the network) must not hang CI.
if ! timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --no-first-run \
        --disable-sync --disable-dev-shm-usage --user-data-dir="$TMP/profile" \
        --screenshot="$TMP/shot.png" --window-size=800,600 \
        "file://$TMP/page.html" >"$TMP/chromium.log" 2>&1; then
    tail -n 30 "$TMP/chromium.log" >&2
    die "headless chromium screenshot failed"
fi
[ -s "$TMP/shot.png" ] || { tail -n 30 "$TMP/chromium.log" >&2; die "screenshot PNG missing or empty"; }
magic=$(head -c 8 "$TMP/shot.png" | od -An -tx1 | tr -d ' \n')
[ "$magic" = 89504e470d0a1a0a ] || die "screenshot is not a PNG (magic $magic)"
size=$(stat -c %s "$TMP/shot.png")
# The PNG IHDR holds width/height at bytes 16..23.
dims=$(od -An -tu1 -j16 -N8 "$TMP/shot.png" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}')
step_end "PNG $dims, $size bytes"

echo "setup-chromium: timings:"
for t in "${TIMINGS[@]}"; do echo "  $t"; done
awk -v a="$T_START" -v b="$(now)" 'BEGIN{printf "  %-22s %6.1fs\n", "total", b-a}'
echo "chromium ready: $CHROMIUM ($VERSION)"
