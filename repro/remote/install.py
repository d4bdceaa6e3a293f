"""This very repro on a RemoteHost: a wheel built here from repro's own source, copied over
and installed into a user environment there (`~/.cache/repro/remote-venv`), reused while
its source digest is the one running here, so both sides always run the same code."""

from __future__ import annotations

import hashlib
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import repro
from repro.errors import ReproError
from repro.paths import cache_dir
from repro.remote.host import RemoteHost
from repro.remote.transfer import upload

REMOTE_VENV = ".cache/repro/remote-venv"
"""Relative to the home there."""
STAMP = "repro-source.txt"
"""In the venv there: the version and source digest installed."""


class RemoteInstallError(ReproError):
    default_hint = (
        "install repro there by hand (pip install repro_capsule-WHEEL in a Python >= 3.11 venv) "
        "and check that pip reaches an index there"
    )


def source_tree() -> Path:
    """The folder holding pyproject.toml and the repro package running now."""
    package = Path(repro.__file__).resolve().parent
    root = package.parent
    if not (root / "pyproject.toml").is_file():
        raise RemoteInstallError(
            f"repro here is not run from its source tree ({package}): no wheel can be built "
            "to install the same version there"
        )
    return root


def source_digest(root: Path | None = None) -> str:
    """sha256 of repro's package files and pyproject.toml (what the wheel is made of)."""
    root = root or source_tree()
    digest = hashlib.sha256()
    files = [
        root / "pyproject.toml",
        *sorted(
            p
            for p in (root / "repro").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ),
    ]
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def stamp() -> str:
    return f"{repro.__version__} {source_digest()}"


def local_wheel(say: Callable[[str], None]) -> Path:
    """The wheel of this repro, built once per source digest (cached)."""
    root = source_tree()
    digest = source_digest(root)
    folder = cache_dir() / "remote-wheels" / digest[:16]
    found = sorted(folder.glob("repro_capsule-*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    say("building a wheel of this repro to install on the cluster")
    with tempfile.TemporaryDirectory(prefix="repro-wheel-") as tmp:
        # A copy of the tree: setuptools writes build/ and *.egg-info beside its input.
        copy = Path(tmp) / "src"
        copy.mkdir()
        shutil.copy2(root / "pyproject.toml", copy)
        if (root / "README.md").is_file():
            shutil.copy2(root / "README.md", copy)
        shutil.copytree(
            root / "repro", copy / "repro", ignore=shutil.ignore_patterns("__pycache__")
        )
        out = Path(tmp) / "dist"
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
        done = subprocess.run(
            [*cmd, "--no-build-isolation", str(copy)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:  # setuptools missing here: let pip fetch the build backend
            done = subprocess.run(
                [*cmd, str(copy)], capture_output=True, text=True, check=False, timeout=600
            )
        wheels = sorted(out.glob("repro_capsule-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = " ".join(done.stderr.split())[-200:]
            raise RemoteInstallError(f"could not build a wheel of repro here: {tail}")
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / wheels[0].name
        shutil.copy2(wheels[0], dest)
        return dest


def ensure_repro(host: RemoteHost, python: str, say: Callable[[str], None]) -> str:
    """The path there of a repro identical to this one, installed first when needed."""
    home = host.home()
    venv = f"{home}/{REMOTE_VENV}"
    exe = f"{venv}/bin/repro"
    wanted = stamp()
    q_venv = shlex.quote(venv)
    have = host.run(
        f"test -x {shlex.quote(exe)} && cat {q_venv}/{STAMP}", check=False, what="reading the stamp"
    )
    if have.ok and have.text.strip() == wanted:
        return exe
    say(f"installing repro {repro.__version__} on {host.spec.label} (in ~/{REMOTE_VENV})")
    wheel = local_wheel(say)
    sent = upload(host, wheel, f"{home}/.cache/repro/wheels", resumable=False)
    q_py, q_wheel = shlex.quote(python), shlex.quote(sent.remote_path)
    # pip needs the wheel's own file name (the upload is SHA.NAME); one per process.
    q_named = shlex.quote(f"{home}/.cache/repro/wheels/{secrets.token_hex(4)}/{wheel.name}")
    q_stamp = shlex.quote(wanted)
    install = " && ".join(
        [
            f"{q_py} -c 'import sys; sys.exit(sys.version_info < (3, 11))' || "
            f"{{ echo 'repro needs Python >= 3.11 there, {python} is older' >&2; exit 3; }}",
            f"mkdir -p $(dirname {q_named}) && cp -f {q_wheel} {q_named}",
            f"{{ [ -x {q_venv}/bin/python ] || {q_py} -m venv {q_venv}; }}",
            f"{q_venv}/bin/python -m pip install -q --disable-pip-version-check {q_named}",
            f"{q_venv}/bin/python -m pip install -q --disable-pip-version-check --no-deps "
            f"--force-reinstall {q_named}",
            f"printf '%s\\n' {q_stamp} > {q_venv}/{STAMP}",
            f"rm -rf $(dirname {q_named})",
        ]
    )
    # One install at a time (flock, where util-linux has it): a second repro waits, then
    # finds the stamp written.
    script = (
        f"mkdir -p {shlex.quote(home + '/.cache/repro')} && "
        f"exec 9> {q_venv}.lock && {{ command -v flock >/dev/null && flock 9 || true; }} && "
        f'if [ "$(cat {q_venv}/{STAMP} 2>/dev/null)" = {q_stamp} ]; then exit 0; fi && '
        f"{install}"
    )
    answer = host.run(script, timeout=900, check=False, what="installing repro")
    if not answer.ok:
        raise RemoteInstallError(
            f"installing repro on {host.spec.label} failed: "
            f"{answer.error_text or f'exit code {answer.returncode}'}"
        )
    return exe
