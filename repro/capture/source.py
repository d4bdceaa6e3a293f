"""Record the source state of a project: git remote, commit, branch, dirty flag, diff digest."""

from __future__ import annotations

import functools
import hashlib
import shutil
from pathlib import Path

from repro.capsule.manifest import SourceState
from repro.credentials import strip_remote_credentials
from repro.errors import ReproError
from repro.execution.tools import Completed, run_tool

GIT_TIMEOUT_S = 300


def git(project: Path, *args: str) -> Completed | None:
    """`git ARGS` run in the project, any exit code; None when git is not installed."""
    if shutil.which("git") is None:
        return None
    return run_tool(
        ["git", *args],
        f"git {args[0]}",
        timeout=GIT_TIMEOUT_S,
        cwd=project,
        error=functools.partial(ReproError, hint="check the project's repository: git status"),
        check=False,
    )


def _out(proc: Completed | None) -> str | None:
    if proc is None or not proc.ok:
        return None
    return proc.stdout_bytes.decode("utf-8", errors="replace").strip() or None


def strip_credentials(url: str) -> str:
    """A remote URL as a capsule records it: tokens must never land in a capsule (every form
    git accepts, `repro.credentials.strip_remote_credentials`)."""
    return strip_remote_credentials(url)


def source_state(project: Path) -> SourceState:
    inside = _out(git(project, "rev-parse", "--is-inside-work-tree"))
    if inside != "true":
        return SourceState(kind="directory")
    commit = _out(git(project, "rev-parse", "--verify", "-q", "HEAD"))
    branch = _out(git(project, "symbolic-ref", "--short", "-q", "HEAD"))
    remote = _out(git(project, "config", "--get", "remote.origin.url"))
    status = _out(git(project, "status", "--porcelain", "--", "."))
    dirty = bool(status)
    diff_sha = None
    if dirty and commit:
        diff = git(project, "diff", "HEAD", "--binary", "--", ".")
        if diff is not None and diff.ok:
            diff_sha = hashlib.sha256(diff.stdout_bytes).hexdigest()
    return SourceState(
        kind="git",
        remote=strip_credentials(remote) if remote else None,
        commit=commit,
        branch=branch,
        dirty=dirty,
        diff_sha256=diff_sha,
    )
