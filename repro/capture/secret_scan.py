"""Keep secrets out of capsules: files that usually hold them, and tokens inside files.

Two layers. Files whose names say "credentials" (.env, id_rsa, .netrc, private-key PEMs, ...)
are left out and reported. Every other text file — code, data, notebooks, the run outputs
and logs recorded as results — is scanned for high-signal token patterns and for the values
of this process's *_TOKEN / *_SECRET / *_PASSWORD variables; a hit fails the capture naming
the file and line, with the secret masked, unless that path is explicitly allowed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from repro.errors import SecretFoundError

SECRET_FILE_GLOBS = (
    ".env*",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pypirc",
    "credentials.json",
    "*.kdbx",
    ".git-credentials",
)
PRIVATE_KEY_SUFFIXES = (".pem", ".key", ".p8")
PRIVATE_KEY_MARK = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

PATTERNS: dict[str, re.Pattern[bytes]] = {
    "private key": PRIVATE_KEY_MARK,
    "AWS access key": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(
        rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
    ),
    "GitLab token": re.compile(rb"\bglpat-[A-Za-z0-9_\-]{20,}"),
    "PyPI token": re.compile(rb"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
    "Zenodo token": re.compile(
        rb"(?i)(?:zenodo[A-Za-z0-9_]*|access_token)[\"'\s]*[:=][\"'\s]*([A-Za-z0-9]{40,})"
    ),
}
# Literal fragments every match contains: a pattern only runs on a chunk holding one of them.
# `bytes in bytes` scans at memory speed; most regexes here have no literal prefix re can use.
GUARDS: dict[str, tuple[bytes, ...]] = {
    "private key": (b"PRIVATE KEY",),
    "AWS access key": (b"AKIA", b"ASIA"),
    "GitHub token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    "GitLab token": (b"glpat-",),
    "PyPI token": (b"pypi-AgEIcHlwaS5vcmc",),
    "Zenodo token": (b"zenodo", b"Zenodo", b"ZENODO", b"access_token", b"ACCESS_TOKEN"),
}
SECRET_VARIABLE = re.compile(
    r"(?i)(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY"
    r"|CREDENTIALS?)(?:_|$)"
)
MIN_VALUE_LENGTH = 8
SCAN_CHUNK = 8 << 20
OVERLAP = 4096
"""Bytes of the previous chunk scanned again, so a token across a chunk boundary is found."""
SNIFF = 8192


def is_secret_variable(name: str) -> bool:
    return bool(SECRET_VARIABLE.search(name))


def secret_file_reason(rel: str, path: Path) -> str | None:
    """Why this file is left out of capsules by default, or None."""
    pure = PurePosixPath(rel)
    name = pure.name
    if any(fnmatch.fnmatchcase(name, g) for g in SECRET_FILE_GLOBS):
        return "usually holds secrets"
    if pure.parts[-2:] == (".aws", "credentials"):
        return "usually holds secrets"
    if name.endswith(PRIVATE_KEY_SUFFIXES):
        try:
            with path.open("rb") as fh:
                head = fh.read(1 << 16)
        except OSError:
            return None
        if PRIVATE_KEY_MARK.search(head):
            return "holds a private key"
    return None


@dataclass(frozen=True)
class Hit:
    where: str
    line: int
    kind: str
    masked: str


def mask(secret: bytes) -> str:
    text = secret.decode("utf-8", errors="replace")
    return f"{text[:4]}…({len(text)} chars)" if len(text) > 8 else "…"


class SecretScanner:
    """Patterns plus the values of secret-looking variables in this process's environment."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._values = sorted(
            {
                v.encode()
                for k, v in env.items()
                if is_secret_variable(k) and len(v) >= MIN_VALUE_LENGTH
            }
        )
        rules = hashlib.sha256()
        for name, pattern in sorted(PATTERNS.items()):
            rules.update(name.encode() + b"\0" + pattern.pattern + b"\0")
        for value in self._values:
            rules.update(hashlib.sha256(value).digest())
        self.rules_digest = rules.hexdigest()
        """Identifies this rule set (values only by hash): scan results are cached by it."""

    def scan_bytes(self, data: bytes, where: str) -> list[Hit]:
        return self._scan(data, where, 0, 1)

    def _scan(self, data: bytes, where: str, skip_before: int, first_line: int) -> list[Hit]:
        """Hits in `data` ending after `skip_before`: the ones that end before it lay wholly in
        the previous chunk's overlap and were reported with it."""
        found: list[tuple[int, str, bytes]] = []
        for kind, pattern in PATTERNS.items():
            if not any(guard in data for guard in GUARDS[kind]):
                continue
            for match in pattern.finditer(data):
                if match.end() > skip_before:
                    found.append((match.start(), kind, match.group(match.lastindex or 0)))
        for value in self._values:
            start = data.find(value, max(0, skip_before - len(value) + 1))
            if start >= 0:
                found.append((start, "value of a secret environment variable", value))
        return [
            Hit(where, first_line + data.count(b"\n", 0, start), kind, mask(secret))
            for start, kind, secret in sorted(found)
        ]

    def scan_file(self, path: Path, where: str) -> list[Hit]:
        """Text files only (a NUL in the first 8 KiB means binary: not scanned), in 8 MiB
        chunks with an overlap, so memory stays flat whatever the file size."""
        hits: list[Hit] = []
        with path.open("rb") as fh:
            window = fh.read(SCAN_CHUNK)
            if b"\0" in window[:SNIFF]:
                return []
            line = 1
            skip = 0
            while window:
                hits += self._scan(window, where, skip, line)
                chunk = fh.read(SCAN_CHUNK)
                if not chunk:
                    break
                keep = window[-OVERLAP:]
                line += window.count(b"\n", 0, len(window) - len(keep))
                skip = len(keep)
                window = keep + chunk
        return hits


def fail_on_hits(hits: Iterable[Hit], hint: str | None = None) -> None:
    found = sorted(hits, key=lambda h: (h.where, h.line))
    if not found:
        return
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise SecretFoundError(
        f"possible secret in {first.where}:{first.line}: {first.kind} {first.masked}{more}",
        hint=hint
        or f"remove it (and rotate it), or if it is not a secret: --allow-secret {first.where}",
    )
