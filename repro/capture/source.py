"""Record the source state of a project: git remote, commit, branch, dirty flag, diff digest."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from repro.models import SourceState


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(["git", *args], cwd=project, capture_output=True, check=False)
    except FileNotFoundError:
        return None


def _out(proc: subprocess.CompletedProcess[bytes] | None) -> str | None:
    if proc is None or proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace").strip() or None


def strip_credentials(url: str) -> str:
    """Drop user:password@ from a remote URL: tokens must never land in a capsule."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def source_state(project: Path) -> SourceState:
    inside = _out(_git(project, "rev-parse", "--is-inside-work-tree"))
    if inside != "true":
        return SourceState(kind="directory")
    commit = _out(_git(project, "rev-parse", "--verify", "-q", "HEAD"))
    branch = _out(_git(project, "symbolic-ref", "--short", "-q", "HEAD"))
    remote = _out(_git(project, "config", "--get", "remote.origin.url"))
    status = _out(_git(project, "status", "--porcelain", "--", "."))
    dirty = bool(status)
    diff_sha = None
    if dirty and commit:
        diff = _git(project, "diff", "HEAD", "--binary", "--", ".")
        if diff is not None and diff.returncode == 0:
            diff_sha = hashlib.sha256(diff.stdout).hexdigest()
    return SourceState(
        kind="git",
        remote=strip_credentials(remote) if remote else None,
        commit=commit,
        branch=branch,
        dirty=dirty,
        diff_sha256=diff_sha,
    )
