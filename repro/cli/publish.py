"""`repro publish`: deposit a capsule on Zenodo with its own DOI stamped in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, SigningKey, ZenodoUrl
from repro.cli.prompts import prompt_passphrase

if TYPE_CHECKING:
    from repro.publish.target import Target


def publish_command(
    capsule: Annotated[
        Path | None, typer.Argument(help="Capsule file (not with --attestation).")
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Use sandbox.zenodo.org (token: ZENODO_SANDBOX_API_TOKEN)."),
    ] = False,
    zenodo_url: ZenodoUrl = None,
    do_publish: Annotated[
        bool,
        typer.Option(
            "--publish", help="Publish the draft: registers the DOI; this cannot be undone."
        ),
    ] = False,
    new_version_of: Annotated[
        str | None,
        typer.Option(
            "--new-version-of",
            help="DOI (a version's or the concept DOI) or id of the record this one follows.",
        ),
    ] = None,
    community: Annotated[
        list[str] | None,
        typer.Option("--community", help="Zenodo community to submit to (repeatable)."),
    ] = None,
    upload_type: Annotated[
        str | None,
        typer.Option(
            "--upload-type", help="Zenodo upload type (default: CITATION.cff type, else software)."
        ),
    ] = None,
    key: SigningKey = None,
    attestation: Annotated[
        Path | None,
        typer.Option(
            "--attestation",
            help="Deposit this replay attestation as its own record, linked to its "
            "capsule's DOI (isSupplementTo).",
        ),
    ] = None,
    creator: Annotated[
        list[str] | None,
        typer.Option("--creator", help="With --attestation: who replayed, 'Family, Given'."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Deposit a capsule on Zenodo with its own DOI stamped in (a draft unless --publish)."""
    from repro.errors import UsageError
    from repro.publish import PublishOptions, publish, resolve_target
    from repro.report.models import PublishOutput

    target = resolve_target(sandbox=sandbox, zenodo_url=zenodo_url)
    if attestation is not None:
        if capsule is not None or new_version_of is not None:
            raise UsageError(
                "--attestation publishes an attestation on its own",
                hint="repro publish --attestation ATT [--publish] (no capsule, no "
                "--new-version-of)",
            )
        _publish_attestation(attestation, target, creator or [], do_publish, as_json)
        return
    if capsule is None:
        raise UsageError("no capsule given", hint="repro publish CAPSULE [--publish]")
    opts = PublishOptions(
        capsule=capsule,
        target=target,
        publish=do_publish,
        new_version_of=new_version_of,
        communities=community or [],
        upload_type=upload_type,
        key=key,
        passphrase_prompt=prompt_passphrase,
    )
    with terminal.TransferBar(f"uploading {capsule.name}", not as_json) as progress:
        result = publish(opts, observe=None if as_json else terminal.say, progress=progress)
    terminal.warn(result.warnings)
    if as_json:
        terminal.emit_json(PublishOutput.build(result))
        return
    where = " --sandbox" if sandbox else f" --zenodo-url {zenodo_url}" if zenodo_url else ""
    terminal.render_publish(result, f"repro publish {capsule}{where} --publish")


def _publish_attestation(
    attestation: Path, target: Target, creators: list[str], do_publish: bool, as_json: bool
) -> None:
    from repro.publish.attestations import AttestationPublishOptions, publish_attestation
    from repro.report.attestation import PublishAttestationOutput

    opts = AttestationPublishOptions(attestation, target, creators, publish=do_publish)
    receipt = publish_attestation(opts)
    receipt_path = attestation.with_name(attestation.name + ".zenodo.json")
    if as_json:
        terminal.emit_json(PublishAttestationOutput.build(receipt, str(receipt_path)))
    else:
        terminal.render_attestation_published(receipt, receipt_path)
