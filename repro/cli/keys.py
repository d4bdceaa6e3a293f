"""`repro keys`: signing keys and the trust store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repro.cli.lazy import terminal
from repro.cli.options import AsJson, KeyName
from repro.cli.prompts import new_passphrase


def generate_command(
    name: KeyName = "default",
    passphrase: Annotated[
        bool, typer.Option("--passphrase", help="Encrypt the private key with a passphrase.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Create an Ed25519 key pair in the user's config directory."""
    from repro.report.models import KeyGenerateOutput
    from repro.sign import generate_key

    info = generate_key(name, new_passphrase() if passphrase else None)
    if as_json:
        terminal.emit_json(KeyGenerateOutput.build(info))
    else:
        terminal.render_key_generated(info)


def list_command(as_json: AsJson = False) -> None:
    """Your signing keys and the keys you trust."""
    from repro.report.models import KeyListOutput
    from repro.sign import list_keys, trusted_keys

    own = list_keys()
    trusted = trusted_keys()
    if as_json:
        terminal.emit_json(KeyListOutput.build(own, trusted))
    else:
        terminal.render_keys(own, trusted)


def export_command(name: KeyName = "default", as_json: AsJson = False) -> None:
    """Print a public key (PEM), to give to the people who replay your capsules."""
    from repro.sign import export_public, fingerprint, key_id, keys_dir, load_public_key

    key = load_public_key(keys_dir() / f"{name}.pub")
    pem = export_public(key).decode()
    if as_json:
        from repro.report.models import KeyExportOutput

        keyid = key_id(key)
        terminal.emit_json(
            KeyExportOutput(
                ok=True,
                name=name,
                keyid=keyid,
                fingerprint=fingerprint(keyid),
                public_key_pem=pem,
            )
        )
    else:
        sys.stdout.write(pem)


def trust_command(
    public_key: Annotated[Path, typer.Argument(help="A public key file (PEM).")],
    name: Annotated[str | None, typer.Option("--name", help="Who it belongs to.")] = None,
    as_json: AsJson = False,
) -> None:
    """Add a public key to the trust store."""
    from repro.report.models import KeyTrustOutput
    from repro.sign import trust_key

    keyid, label = trust_key(public_key, name)
    if as_json:
        terminal.emit_json(KeyTrustOutput(ok=True, keyid=keyid, name=label))
    else:
        terminal.render_trusted(keyid, label)


def untrust_command(
    name_or_id: Annotated[str, typer.Argument(help="Trusted key name, or key id prefix.")],
    as_json: AsJson = False,
) -> None:
    """Remove a key from the trust store."""
    from repro.report.models import KeyUntrustOutput
    from repro.sign import untrust_key

    gone = untrust_key(name_or_id)
    if as_json:
        terminal.emit_json(KeyUntrustOutput(ok=True, removed=gone))
    else:
        terminal.render_untrusted(gone)
