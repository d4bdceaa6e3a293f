"""The isolation table: a hostile capsule replayed on every target, attack by attack.

    python benchmarks/bench_isolation.py [--targets local,none,docker,slurm] [--base-image IMG]

The capsule's run (tests/isolation_attack.py) tries to (a) read secret variables planted in
the replaying user's environment (ZENODO_API_TOKEN, AWS_SECRET_ACCESS_KEY,
REPRO_KEY_PASSPHRASE, GITHUB_TOKEN, SSH_AUTH_SOCK), (b) read files planted in the user's
HOME (~/.ssh/id_rsa, ~/.config/repro/keys/default.key) and in another capsule's cache
folder, (c) write into the user's HOME, /tmp and repro's cache, (d) connect to a listener
the benchmark starts on 127.0.0.1. Targets: `local` (bubblewrap), `none` (local with
--no-sandbox: the baseline, what every local replay was before issue 16), `docker`,
`slurm`. Then the cost of the sandbox: one trivial command and one `python -c 'import
json'` through repro's LocalRunner, with and without bubblewrap (median of 20).

Prints the table (Markdown) and writes benchmarks/results/isolation.json. Runs in a
temporary HOME and REPRO_CACHE_DIR (yours are never touched); needs what each target needs
(bwrap, a Docker engine with the base image, a Slurm cluster) and skips a target without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from repro.config.models import Run  # noqa: E402
from repro.execution.runs import InFlight, LocalRunner  # noqa: E402
from repro.execution.sandbox import NoSandbox, available_sandbox  # noqa: E402
from tests.isolation_attack import (  # noqa: E402
    ATTACKS,
    SECRETS,
    Listener,
    Outcome,
    Plan,
    hostile_project,
    judge,
    table,
)


def repro(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=1200,
        check=False,
    )


def attack(root: Path, target: str, base_image: str, env: dict[str, str]) -> Outcome | str:
    """One target's outcome, or why it was skipped."""
    plan = Plan.around(Path(env["HOME"]), Path(env["REPRO_CACHE_DIR"]))
    listener = Listener()
    try:
        project = hostile_project(root / f"hostile-{target}", plan, listener.port, [])
        extra = ["--base-image", base_image] if target == "docker" else []
        capsule = root / f"hostile-{target}.tgz"
        done = repro("capture", str(project), "-o", str(capsule), "--no-sign", *extra, env=env)
        if done.returncode != 0:
            return f"capture failed: {done.stderr.strip()[-300:]}"
        plan.clean()
        listener.connections = 0
        plan.plant()
        work = root / f"work-{target}"
        flags = ["--target", "local", "--no-sandbox"] if target == "none" else ["--target", target]
        done = repro(
            "replay",
            str(capsule),
            "--json",
            *flags,
            "--workdir",
            str(work),
            *extra,
            env={**env, **SECRETS},
        )
        if done.returncode not in (0, 3):
            return f"replay exit {done.returncode}: {done.stderr.strip()[-300:]}"
        isolation = json.loads(done.stdout)["isolation"]
        (found_file,) = work.glob("*/capsule/data/project/attack.json")
        found = json.loads(found_file.read_text())
        label = "local --no-sandbox" if target == "none" else target
        return judge(label, isolation, found, plan, listener.connections)
    finally:
        listener.close()
        plan.clean()


def sandbox_cost(root: Path) -> dict[str, dict[str, float]]:
    """Median wall time (ms) of a command through LocalRunner, unsandboxed and in bwrap."""
    sandbox = available_sandbox()
    if sandbox.isolation == "none":
        return {}
    run = Run(name="probe", command="true", outputs=[])
    work = root / "cost"
    work.mkdir()
    results: dict[str, dict[str, float]] = {}
    for label, box in (("none", NoSandbox()), ("bubblewrap", sandbox)):
        runner = LocalRunner(Path(sys.executable).parent, None, sandbox=box)
        for command in ("true", "python -c 'import json'"):
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                result = runner.run(command, work, {}, 60, run, InFlight())
                times.append((time.perf_counter() - t0) * 1000)
                assert result.exit_code == 0, result.stderr_tail
            results.setdefault(command, {})[label] = round(statistics.median(times), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="local,none,docker,slurm")
    parser.add_argument(
        "--base-image",
        default=os.environ.get("REPRO_BASE_IMAGE", "repro-base:bookworm-py3.11"),
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "isolation.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repro-bench-isolation-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REPRO_", "ZENODO_", "PIP_", "UV_", "VIRTUAL_ENV"))
        }
        env.update(HOME=str(home), REPRO_CACHE_DIR=str(root / "cache"))
        env["REPRO_CONFIG_DIR"] = str(home / ".config" / "repro")
        outcomes: list[Outcome] = []
        skipped: dict[str, str] = {}
        for target in args.targets.split(","):
            t0 = time.perf_counter()
            got = attack(root, target, args.base_image, env)
            if isinstance(got, str):
                skipped[target] = got
                print(f"{target}: skipped ({got})", file=sys.stderr)
                continue
            got.details["replay_s"] = round(time.perf_counter() - t0, 1)
            outcomes.append(got)
        cost = sandbox_cost(root)
    print(table(outcomes))
    for target, why in skipped.items():
        print(f"\n{target}: not measured: {why}")
    if cost:
        print("\nLocalRunner, median of 20 (ms): command | unsandboxed | bubblewrap")
        for command, row in cost.items():
            print(f"  {command} | {row['none']} | {row['bubblewrap']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "attacks": list(ATTACKS),
                "outcomes": [
                    {
                        "target": o.target,
                        "isolation": o.isolation,
                        "refused": o.refused,
                        "details": o.details,
                    }
                    for o in outcomes
                ],
                "skipped": skipped,
                "sandbox_cost_ms": cost,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
