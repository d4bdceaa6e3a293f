"""Fingerprint the machine a capsule is captured (or replayed) on."""

from __future__ import annotations

import os
import platform as _platform
import shutil
from pathlib import Path

from repro.capsule.manifest import Gpu, Platform
from repro.env.pythons import abi_tag
from repro.execution.tools import probe


def _os_release() -> str | None:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    return fields.get("PRETTY_NAME", "").strip('"') or None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi lists here (none without it)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    proc = probe(
        [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], timeout=20
    )
    if proc is None:
        return []
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append(Gpu(name=parts[0], driver=parts[1], memory=parts[2]))
    return gpus


def _soabi() -> str:
    import sysconfig

    return str(sysconfig.get_config_var("SOABI") or "")


def fingerprint() -> Platform:
    return Platform(
        system=_platform.system(),
        release=_platform.release(),
        distribution=_os_release(),
        machine=_platform.machine(),
        python_implementation=_platform.python_implementation(),
        python_version=_platform.python_version(),
        python_abi=abi_tag(_platform.python_implementation(), _soabi()),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        memory_bytes=_memory_bytes(),
        gpus=gpus(),
    )
