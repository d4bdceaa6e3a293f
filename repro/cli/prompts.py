"""Passphrases asked on the terminal: the core gets a prompt callback, never a terminal."""

from __future__ import annotations

import os
import sys

import typer

from repro.errors import KeyPassphraseError


def prompt_passphrase(label: str) -> str:
    """Ask for an existing key's passphrase (the core calls this only when it needs one)."""
    if not sys.stdin.isatty():
        raise KeyPassphraseError(f"{label}: no terminal to ask on")
    return str(typer.prompt(label, hide_input=True))


def confirm_on_terminal(question: str) -> bool:
    """Yes/no on the terminal (default no); no terminal: no."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    return bool(typer.confirm(question, default=False, err=True))


def new_passphrase() -> str:
    """A passphrase for a new key: REPRO_KEY_PASSPHRASE, else asked twice on the terminal."""
    from repro.sign import PASSPHRASE_ENV

    secret = os.environ.get(PASSPHRASE_ENV)
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise KeyPassphraseError("--passphrase needs a terminal or REPRO_KEY_PASSPHRASE")
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=True))
