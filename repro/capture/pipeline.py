"""`repro capture`: turn a project into a capsule, stage by stage (plan, snapshot,
environment, results, assemble, write)."""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro.capsule.manifest import Manifest
from repro.capsule.writer import WrittenCapsule
from repro.capture import environment as env_stage
from repro.capture.assemble import assemble
from repro.capture.options import CaptureOptions, CaptureTarget, Observer
from repro.capture.plan import plan_capture
from repro.capture.results import record_results
from repro.capture.snapshot import take_snapshot
from repro.capture.write import scan_generated, signing_key, write
from repro.own_captures import remember
from repro.paths import scratch_prefix
from repro.sign import key_id

__all__ = ["CaptureOptions", "CaptureResult", "CaptureTarget", "Observer", "capture"]


@dataclass(frozen=True)
class CaptureResult:
    capsule: WrittenCapsule
    manifest: Manifest
    config_source: str | None
    hashed_bytes: int
    timings: dict[str, float]
    signed_by: str | None
    """Key id of the signature, when the capsule was signed."""


def _quiet(_msg: str) -> None:
    pass


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a stage that builds an object or a tuple
    per file and drops none: with it on, each collection walks every object built so far
    (at 100,000 files, half of the manifest's file list build). Nothing of these stages is
    garbage held in cycles; it runs again after, and on as it was."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def capture(opts: CaptureOptions, observe: Observer | None = None) -> CaptureResult:
    """Capture `opts.project` into the capsule file `opts.output`.

    Nothing is written at the destination unless every step succeeded.
    """
    say = observe or _quiet
    plan = plan_capture(opts)
    shared: Path | None = None
    if opts.target == "slurm":
        from repro.capture.on_slurm import check_slurm, shared_scratch

        check_slurm(opts, plan.config)  # exit 5 before any work when Slurm is not here
        shared = shared_scratch(opts.slurm) if opts.execute else None
    key = signing_key(opts)  # before any work: a wrong passphrase fails fast
    with gc_paused():
        snapshot = take_snapshot(plan, say)
    # On Slurm the scratch folder (stage, results) is where the nodes see it.
    work = Path(tempfile.mkdtemp(prefix=scratch_prefix("capture"), dir=shared))
    try:
        environment = env_stage.prepare(plan, snapshot, work, say)
        results = record_results(plan, snapshot, environment, work, say)
        with gc_paused():
            assembled = assemble(plan, snapshot, environment, results, work, say)
        say(f"writing {plan.output.name}")
        t0 = time.perf_counter()
        with gc_paused():
            manifest_bytes = assembled.manifest.canonical_json()
            scan_generated(snapshot.scanner, assembled, results.expectations, manifest_bytes)
            written = write(plan.output, assembled, key, plan.epoch, manifest_bytes)
        del manifest_bytes
        remember(written.capsule_id)
        timings = {
            **snapshot.timings,
            **environment.timings,
            **results.timings,
            "write": time.perf_counter() - t0,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CaptureResult(
        written,
        assembled.manifest,
        plan.config_source,
        snapshot.hashed_bytes,
        timings,
        key_id(key.public_key()) if key else None,
    )
