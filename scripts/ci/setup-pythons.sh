#!/usr/bin/env bash
# Base images for other Pythons than the base image's, named as repro's default would name
# them (python:X.Y-slim), for the tests that capture and replay studies pinned to those
# Pythons. There is no image registry here: each is the local base image
# ($REPRO_CI_BASE_IMAGE, made by setup-docker.sh) with this machine's pyenv build of X.Y
# copied to /usr/local, as the official images install theirs.
#
#   - an image that already exists is left alone (a real python:X.Y-slim included);
#   - a version pyenv does not have here is skipped with a message (its tests then fail
#     under REPRO_REQUIRE_SERVICES=1, saying which image is missing).
#
# Idempotent; about 20 s an image when built, a second when present. Needs root and the
# Docker engine. Env: REPRO_CI_PYTHONS (default "3.6 3.8 3.12"), REPRO_CI_BASE_IMAGE,
# PYENV_ROOT.
set -euo pipefail

BASE=${REPRO_CI_BASE_IMAGE:-repro-base:bookworm-py3.11}
VERSIONS=${REPRO_CI_PYTHONS:-3.6 3.8 3.12}
PYENV=${PYENV_ROOT:-$HOME/.pyenv}

die() { echo "setup-pythons: ERROR: $*" >&2; exit 1; }
docker image inspect "$BASE" >/dev/null 2>&1 || die "base image $BASE is missing (run setup-docker.sh)"

for mm in $VERSIONS; do
    image="python:$mm-slim"
    if docker image inspect "$image" >/dev/null 2>&1; then
        echo "setup-pythons: $image present"
        continue
    fi
    # the newest micro release pyenv has of mm
    src=$(ls -d "$PYENV/versions/$mm".* 2>/dev/null | sort -t. -k3 -n | tail -n 1 || true)
    if [ -z "$src" ] || [ ! -x "$src/bin/python$mm" ]; then
        echo "setup-pythons: no Python $mm in $PYENV/versions: $image not built"
        continue
    fi
    t0=$(date +%s)
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    # The interpreter finds its standard library next to itself, so it runs from /usr/local
    # like an official image's. Tests and static libraries are left out (a third of the size).
    tar -C "$src" --exclude="lib/python$mm/test" --exclude="lib/python$mm/*/tests" \
        --exclude='*.a' --exclude='__pycache__' -cf "$ctx/python.tar" bin include lib share
    cat >"$ctx/Dockerfile" <<EOF
FROM $BASE
ADD python.tar /usr/local/
RUN ldconfig \\
    && ln -sf python$mm /usr/local/bin/python3 \\
    && ln -sf python$mm /usr/local/bin/python \\
    && python3 -c 'import ssl, sqlite3, ctypes, venv, ensurepip' \\
    && python3 -m venv /tmp/check && /tmp/check/bin/python -m pip --version && rm -rf /tmp/check
LABEL org.repro.ci-python="$src"
EOF
    echo "setup-pythons: building $image from $src"
    DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>"$ctx/build.err" || { cat "$ctx/build.err" >&2; die "building $image failed"; }
    rm -rf "$ctx"
    trap - EXIT
    echo "setup-pythons: $image ready ($(docker run --rm "$image" python3 --version 2>&1)) in $(( $(date +%s) - t0 )) s"
done
