"""`repro verify`: integrity and signature of a capsule, nothing executed."""

from __future__ import annotations

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, CapsuleFile, RequireSigned, RequireTrusted


def verify_command(
    capsule: CapsuleFile,
    require_signed: RequireSigned = False,
    require_trusted: RequireTrusted = False,
    as_json: AsJson = False,
) -> None:
    """Check integrity and signature: every checksum, the manifest against the archive."""
    from repro.verify import Policy, verify_capsule

    terminal.enable_progress(not as_json)
    report = verify_capsule(capsule, Policy(require_signed, require_trusted))
    if as_json:
        from repro.report.models import VerifyOutput

        terminal.emit_json(VerifyOutput.build(report))
    else:
        terminal.render_verify(report)
