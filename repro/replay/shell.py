"""`repro shell` and `repro exec`: a shell, or one command, in a capsule's locked environment,
its files unpacked in a scratch folder; nothing is run or compared but what the user asks.

The capsule goes through replay's own stages: verified and unpacked (open), its environment
built or reused as replay builds it (the local target's venv, the docker target's image), and
the command run with the same isolation as a replay's runs -- the environment allowlist, the
sandbox (bubblewrap) or the container -- unless the user relaxes it (--no-sandbox,
--network, --pass-env). Unlike a run, it gets this terminal: stdin, stdout and stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from repro.config.models import Run
from repro.paths import scratch_prefix
from repro.replay.open import Opened, open_for_replay
from repro.replay.targets import Observer, TargetOptions, choose
from repro.replay.targets.base import allowlist, study_variables
from repro.verify import Policy

PROMPT = "(repro) \\w $ "


@dataclass(frozen=True)
class ShellOptions:
    capsule: Path
    command: list[str] | None = None
    """None: an interactive shell."""
    target: Literal["local", "docker"] | None = None
    """None: docker when an engine answers, else local (as replay)."""
    policy: Policy = field(default_factory=Policy)
    base_image: str | None = None
    offline: bool = False
    pass_env: tuple[str, ...] = ()
    no_sandbox: bool = False
    network: bool = False
    """Give the command the network (a replay's runs have it only when declared)."""
    keep: bool = False
    """Keep the scratch folder (its path is said) instead of removing it."""
    tty: bool = False
    """stdin and stdout are a terminal (docker: allocate one)."""
    confirm: Callable[[str], bool] | None = None


def _shell_argv(local: bool) -> list[str]:
    if local:
        return [shutil.which("bash") or "/bin/sh"]
    return ["/bin/sh", "-c", "if command -v bash >/dev/null; then exec bash; else exec sh; fi"]


@contextmanager
def _terminal_signals_to_the_child() -> Iterator[None]:
    """While the command runs, Ctrl-C and Ctrl-\\ are its own (a shell cancels a line, a
    program stops): repro waits instead of dying. A handler, not SIG_IGN, which the child
    would inherit across exec."""
    kept = {sig: signal.signal(sig, lambda _s, _f: None) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it: 128 + N when signal N ended it."""
    return 128 - code if code < 0 else code


def run_in_capsule(opts: ShellOptions, say: Observer) -> int:
    """Run the command (or a shell) in the capsule's environment; its exit status."""
    workdir = Path(tempfile.mkdtemp(prefix=scratch_prefix("shell")))
    try:
        opened = open_for_replay(opts.capsule, workdir, opts.policy, [], {}, opts.offline, say)
        options = TargetOptions(
            base_image=opts.base_image,
            offline=opts.offline,
            pass_env=opts.pass_env,
            no_sandbox=opts.no_sandbox,
            trusted=opened.trusted,
            confirm=opts.confirm,
        )
        for warning in opened.warnings:
            say(f"warning: {warning}")
        target = choose(opts.target, say)
        if target == "docker":
            return _in_container(opts, opened, options, say)
        return _on_this_machine(opts, opened, options, workdir, say)
    finally:
        if opts.keep:
            say(f"kept the scratch folder {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _on_this_machine(
    opts: ShellOptions, opened: Opened, options: TargetOptions, workdir: Path, say: Observer
) -> int:
    from repro.execution.runs import LocalRunner
    from repro.replay.targets.isolation import sandbox_for
    from repro.replay.targets.local import environment

    sandbox, warnings = sandbox_for("local", options)
    say(f"isolation: {sandbox.isolation}")
    manifest = opened.manifest
    venv, env_warnings = environment(manifest, opened.root, opts.offline, say, sandbox=sandbox)
    allowed = allowlist(manifest, options)
    for warning in [*warnings, *allowed.missing(), *env_warnings]:
        say(f"warning: {warning}")
    runner = LocalRunner(venv.bin_dir, venv.root, allowed, sandbox)
    home = workdir / "home"
    home.mkdir()
    env = runner.environment({**study_variables(manifest), "PS1": PROMPT}, home)
    argv = opts.command or _shell_argv(local=True)
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        say(f"{argv[0]}: command not found in the capsule's environment")
        return 127  # as a shell says (bubblewrap itself would say 1)
    if sandbox.isolation != "none":
        run = Run(name="shell", command=" ".join(argv), network=opts.network)
        argv = sandbox.wrap(argv, runner.sandbox_spec(opened.project, home, run))
    say(f"in {opened.project} (removed afterwards unless --keep)")
    try:
        with _terminal_signals_to_the_child():
            proc = subprocess.run(argv, cwd=opened.project, env=env, check=False)
    except FileNotFoundError:
        return 127  # as a shell says of a command it cannot find
    return exit_status(proc.returncode)


def _in_container(opts: ShellOptions, opened: Opened, options: TargetOptions, say: Observer) -> int:
    from repro.engines import ContainerSpec, Mount
    from repro.engines.docker_engine import DockerEngine
    from repro.execution.container import CONTAINER_HOME, CONTAINER_UID, give_to_container_user
    from repro.execution.environment import run_environment
    from repro.replay.targets.container import _environment

    if opts.no_sandbox:
        say("warning: --no-sandbox is ignored on the docker target: the container isolates")
    engine = DockerEngine()
    try:
        engine.ping()
        manifest = opened.manifest
        image = _environment(engine, manifest, opened.root, opts.base_image, opts.offline, say)
        give_to_container_user(opened.project)
        allowed = allowlist(manifest, options)
        for warning in allowed.missing():
            say(f"warning: {warning}")
        user = (
            f"{CONTAINER_UID}:{CONTAINER_UID}"
            if os.getuid() == 0
            else f"{os.getuid()}:{os.getgid()}"
        )
        spec = ContainerSpec(
            image=image,
            command=tuple(opts.command or _shell_argv(local=False)),
            workdir="/work",
            user=user,
            environment=run_environment(
                allowed,
                home=CONTAINER_HOME,
                path=None,
                variables={**study_variables(manifest), "PS1": PROMPT},
                host_paths=False,
            ),
            mounts=(Mount(opened.project, "/work"),),
            tmpfs=("/tmp", CONTAINER_HOME),  # noqa: S108 - paths inside the container
            network=opts.network,
        )
        say("in /work of a fresh container (removed afterwards)")
        with _terminal_signals_to_the_child():
            return exit_status(engine.run_attached(spec, tty=opts.tty))
    finally:
        engine.close()
