"""Which sandbox a replay's runs on this machine get, and when a replay must not run at all.

A capsule is a stranger's code. Where bubblewrap works, local runs execute in it. Where no
sandbox works, a capsule signed by a trusted key, or one this user captured on this machine
(repro.own_captures), replays unsandboxed (with a warning); any other capsule only with
--no-sandbox or an interactive yes: otherwise SandboxUnavailableError (exit 4, as for a
capsule that does not meet --require-trusted).
"""

from __future__ import annotations

from repro.errors import SandboxUnavailableError
from repro.execution.sandbox import NoSandbox, Sandbox, available_sandbox
from repro.replay.targets.base import TargetName, TargetOptions

NO_SANDBOX_HINT = (
    "replay in a container (start the Docker engine, --target docker), install bubblewrap "
    "(apt-get install bubblewrap), trust the author's key (repro keys trust KEY.pub), or "
    "accept running it with all your user's rights: --no-sandbox"
)


def sandbox_for(target: TargetName, options: TargetOptions) -> tuple[Sandbox, list[str]]:
    """The sandbox for runs of `target` on this machine, and the warnings to report."""
    if options.no_sandbox:
        return NoSandbox(), [
            f"--no-sandbox: the {target} runs are not sandboxed; they can read and write "
            "everything your user can (only the environment allowlist applies)"
        ]
    sandbox = available_sandbox()
    if sandbox.isolation != "none":
        return sandbox, []
    if options.trusted:
        return NoSandbox(), [
            "no sandbox (bubblewrap) works on this machine: the runs of this capsule (signed "
            "by a trusted key, or captured by you here) are not sandboxed (only the "
            "environment allowlist applies)"
        ]
    question = (
        "No sandbox (bubblewrap) works on this machine, and this capsule is not signed by a "
        "trusted key: its code would run with all your user's rights. Run it anyway?"
    )
    if options.confirm is not None and options.confirm(question):
        return NoSandbox(), [
            "the runs are not sandboxed (confirmed interactively): only the environment "
            "allowlist applies"
        ]
    raise SandboxUnavailableError(
        f"no sandbox works on this machine: the {target} target does not run a capsule "
        "that is not signed by a trusted key unsandboxed",
        hint=NO_SANDBOX_HINT,
    )
