"""`repro publish`: deposit a capsule on Zenodo with its own DOI stamped in."""

from __future__ import annotations

from typing import Annotated

import typer

from repro.cli.options import AsJson, CapsuleFile, SigningKey, ZenodoUrl
from repro.cli.prompts import prompt_passphrase
from repro.report import terminal


def publish_command(
    capsule: CapsuleFile,
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
            "--new-version-of", help="DOI (or id) of the published version this one follows."
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
    as_json: AsJson = False,
) -> None:
    """Deposit a capsule on Zenodo with its own DOI stamped in (a draft unless --publish)."""
    from repro.publish import PublishOptions, publish, resolve_target
    from repro.report.models import PublishOutput

    target = resolve_target(sandbox=sandbox, zenodo_url=zenodo_url)
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
