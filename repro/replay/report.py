"""Replay stage 5, report: the ReplayReport of a judged replay (and its HTML page)."""

from __future__ import annotations

import time
from pathlib import Path

from repro.attestation.check import CheckedAttestation
from repro.capsule.layout import created_timestamp
from repro.machine import fingerprint
from repro.replay.environment import differences
from repro.replay.judge import Judgement
from repro.replay.open import Opened
from repro.replay.targets import Prepared, TargetName
from repro.report.replay import ReplayReport


def build_report(
    capsule: Path,
    opened: Opened,
    target: TargetName,
    prepared: Prepared,
    judged: Judgement,
    kept_workdir: Path | None,
    started: float,
    t0: float,
) -> ReplayReport:
    """`started` is the wall-clock start (time.time), `t0` the same moment on perf_counter."""
    return ReplayReport(
        capsule=str(capsule),
        capsule_id=opened.capsule_id,
        title=opened.manifest.metadata.title,
        signature=opened.signature,
        target=target,
        isolation=prepared.isolation,
        reproduced=judged.reproduced,
        verified=judged.verified,
        counts=judged.counts,
        points=judged.points,
        notebooks=judged.notebooks,
        environment_differences=differences(
            opened.manifest,
            fingerprint(),
            prepared.python_version,
            prepared.installed,
            prepared.python_abi,
        ),
        warnings=[*opened.warnings, *prepared.warnings, *judged.warnings],
        workdir=str(kept_workdir) if kept_workdir is not None else None,
        started=created_timestamp(int(started)),
        duration_s=round(time.perf_counter() - t0, 3),
    )


def write_html(
    report: ReplayReport,
    opened: Opened,
    dest: Path,
    attestation: CheckedAttestation | None = None,
) -> None:
    from repro.report.page import write_html_report

    write_html_report(report, opened.root, opened.project, dest, attestation)
