"""GPUs a replay needs (`resources.gpus` of its runs) and whether the target has them: a run
that needs GPUs is refused, in one line, before anything is built or submitted."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable

from repro.config.models import Run
from repro.errors import GpuUnavailableError
from repro.execution.tools import probe
from repro.machine import gpus as visible_gpus
from repro.replay.targets.base import TargetName


def runs_need_gpus(runs: Iterable[Run]) -> int:
    """The most GPUs one point of these runs asks for (0: none)."""
    return max((run.resources.gpus for run in runs), default=0)


def slurm_gpus() -> int:
    """The most GPUs one node of the cluster offers as generic resources (sinfo's GRES:
    gpu:2, gpu:a100:4(S:0-1)); 0 when none does or sinfo does not say."""
    sinfo = shutil.which("sinfo")
    proc = probe([sinfo, "-h", "-o", "%G"], timeout=30) if sinfo else None
    if proc is None:
        return 0
    most = 0
    for gres in proc.stdout.split():
        for match in re.finditer(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres):
            most = max(most, int(match.group(1)))
    return most


def check_gpus(target: TargetName, runs: Iterable[Run]) -> None:
    """GpuUnavailableError when a run needs more GPUs than `target` offers: NVIDIA GPUs
    nvidia-smi lists here (local, docker), GPUs a Slurm node offers (slurm)."""
    runs = list(runs)
    need = runs_need_gpus(runs)
    if need == 0:
        return
    have = slurm_gpus() if target == "slurm" else len(visible_gpus())
    if have >= need:
        return
    name = next(run.name for run in runs if run.resources.gpus == need)
    where = "no node of this Slurm cluster offers" if target == "slurm" else "this machine has"
    raise GpuUnavailableError(
        f"run {name} needs {need} GPU(s), but {where} "
        + (f"that many (at most {have})" if target == "slurm" else f"{have} (nvidia-smi)"),
        hint="replay where NVIDIA GPUs are (a GPU node or partition: --partition), or replay "
        "the other runs: --run NAME",
    )
