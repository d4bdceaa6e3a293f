"""Keep secrets out of capsules: files that usually hold them, and tokens inside files.

Two layers. Files whose names say "credentials" (.env, id_rsa, .netrc, private-key PEMs, ...)
are left out and reported. Every other text file — code, data, notebooks, the run outputs
and logs recorded as results — is scanned for high-signal token patterns (cloud and forge
tokens, private keys), credentials in URLs and connection strings (`scheme://user:pass@`),
bearer/basic/token authorization headers, literal passwords assigned to secret-named
variables (`PGPASSWORD=...`, `api_key = "..."`), and for the values of this process's
secret-named variables (*_TOKEN, *_SECRET, *_PASSWORD, PGPASSWORD, MYSQL_PWD, *_PASS, *_KEY,
... and the password of any `scheme://user:pass@` value such as DATABASE_URL); a hit fails
the capture naming the file and line, with the secret masked, unless that path is allowed.

False positives matter as much as misses: every pattern is followed by a second look
(`VALIDATORS`) that drops placeholders (`${PASSWORD}`, `<token>`, `password`), references
(`password = os.environ[...]`, `token: str`), paths and plain words. README.md ("No
secrets in capsules") lists what is found and what is not.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import ahocorasick_rs

from repro.credentials import URL_PASSWORD, is_placeholder, url_passwords
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
SECRET_FILE_NAME = re.compile("|".join(fnmatch.translate(g) for g in SECRET_FILE_GLOBS))
"""The globs as one regex: one match per file instead of one fnmatch per glob."""
PRIVATE_KEY_SUFFIXES = (".pem", ".key", ".p8")
PRIVATE_KEY_MARK = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

ASSIGNMENT = re.compile(
    rb"(?:[Pp]ass(?:word|wd|phrase)?|PASS(?:WORD|WD|PHRASE)?|[Pp]wd|PWD|[Ss]ecret|SECRET"
    rb"|[Tt]oken|TOKEN|[Kk]ey|KEY|[Cc]redentials?|CREDENTIALS?)"
    rb"[\"']?[ \t]*(?::=|=>|=|:)[ \t]*"
    rb"(?:([\"'])([^\"'\s\\]{4,200})\1|([^\s\"'`,;#&|)]{6,200}))"
)
"""`password = "..."`, `PGPASSWORD=...`, `"api_key": "..."`, `--token=...`: a name ending in a
secret word, then a literal. The regex starts at the word (a literal prefix: linear time);
`_secret_name` then looks back at the whole name."""
ASSIGNMENT_WORDS = (b"pass", b"pwd", b"secret", b"token", b"key", b"credential")
COMPOUND_KEYS = ("api", "secret", "private", "access", "auth", "client", "signing", "encryption")
"""`*_KEY` names that hold a secret in code (`sort_key = "x"` does not)."""
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
    "password in a URL": URL_PASSWORD,
    "bearer token": re.compile(rb"\b(?:[Bb]earer|BEARER)[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)"),
    "basic authorization": re.compile(rb"\b(?:[Bb]asic|BASIC)[ \t]+([A-Za-z0-9+/]{8,}={0,2})"),
    "authorization token": re.compile(
        rb"(?i)authorization[\"']?\s*[:=]\s*[\"']?token[ \t]+([A-Za-z0-9\-._~+/]{16,})"
    ),
    "password assignment": ASSIGNMENT,
}
# Literal fragments every match contains, in lower case: a pattern only runs on a chunk whose
# lower-cased copy holds one of them. `bytes in bytes` scans at memory speed; most regexes
# here have no literal prefix re can use.
GUARDS: dict[str, tuple[bytes, ...]] = {
    "private key": (b"private key",),
    "AWS access key": (b"akia", b"asia"),
    "GitHub token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    "GitLab token": (b"glpat-",),
    "PyPI token": (b"pypi-ageichlwas5vcmc",),
    "Zenodo token": (b"zenodo", b"access_token"),
    "password in a URL": (b"://",),
    "bearer token": (b"bearer",),
    "basic authorization": (b"basic",),
    "authorization token": (b"authorization",),
    "password assignment": ASSIGNMENT_WORDS,
}
ANCHORED = {"password assignment": ASSIGNMENT_WORDS}
ALL_GUARDS = sorted({g for guards in GUARDS.values() for g in guards})
_GUARD_KINDS = [frozenset(k for k, guards in GUARDS.items() if g in guards) for g in ALL_GUARDS]
_GUARD_SEARCH = ahocorasick_rs.BytesAhoCorasick(ALL_GUARDS)
"""Every guard of every pattern found in one Aho-Corasick pass over the lower-cased chunk
(one `in` per guard cost ~5 us per guard on a 6 KiB file; this pass ~15 us for all 25)."""
"""Patterns tried only where one of these words starts (found in the lower-cased chunk): a
regex that starts with a ten-letter alternation would otherwise be tried at every letter."""
VALIDATORS: dict[str, Callable[[re.Match[bytes]], bool]] = {
    "password in a URL": lambda m: not is_placeholder(_text(_secret(m))),
    "bearer token": lambda m: _looks_random(_text(_secret(m))),
    "basic authorization": lambda m: _is_basic_credential(_secret(m)),
    "authorization token": lambda m: _looks_random(_text(_secret(m))),
    "password assignment": lambda m: _secret_name(m) and _looks_like_password(_text(_secret(m))),
}
"""Second looks at a match (the regex finds the shape, these drop placeholders and words)."""
GENERIC = frozenset({"password assignment", "value of a secret environment variable"})
RULES_VERSION = b"2"
"""Bumped when a validator changes: the stat cache's clean scans are keyed by the rules."""
SECRET_VARIABLE = re.compile(
    r"(?i)(?:(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|PASSPHRASE|PWD|API_?KEY|ACCESS_?KEY"
    r"|PRIVATE_?KEY|SECRET_?KEY|KEY|CREDENTIALS?|AUTH)(?:_|$)|PASSWORD$|PASSWD$|^MYSQL_PWD$)"
)
NOT_SECRET_VARIABLES = frozenset({"PWD", "OLDPWD"})
"""The shell's working directories: named like MYSQL_PWD, never secret."""
MIN_VALUE_LENGTH = 8
"""Values of secret variables at least this long are found anywhere, as substrings."""
MIN_SHORT_VALUE_LENGTH = 4
"""Shorter values (down to this) are found only as whole words: "hunter2" in "pw=hunter2", not
"abc" inside "abcdef". Below it a value is indistinguishable from ordinary text."""
SCAN_CHUNK = 8 << 20
OVERLAP = 4096
"""Bytes of the previous chunk scanned again, so a token across a chunk boundary is found."""
SNIFF = 8192


def _secret(match: re.Match[bytes]) -> bytes:
    return match.group(match.lastindex or 0)


def _text(secret: bytes) -> str:
    return secret.decode("utf-8", errors="replace")


def _classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _looks_random(value: str) -> bool:
    """A token, not a word: letters and digits mixed, and not a placeholder."""
    return (
        not is_placeholder(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


def _is_basic_credential(secret: bytes) -> bool:
    """`Basic X` where X is base64 of `user:password` (not "Basic authentication")."""
    try:
        decoded = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded and decoded.isascii() and decoded.decode().isprintable()


def _secret_name(match: re.Match[bytes]) -> bool:
    """Whether the word the match starts with ends a name that says "secret": `db_password`,
    `dbPassword`, `PGPASSWORD`, `MYSQL_PWD`, `apiKey`, `client_secret` -- not `bypass`,
    `sort_key`, `pwd` (the working directory) or `tokens`."""
    data, start = match.string, match.start()
    begin = start
    while begin > max(0, start - 64) and (
        data[begin - 1 : begin].isalnum() or data[begin - 1] in b"_-"
    ):
        begin -= 1
    prefix = data[begin:start].decode("ascii", "replace")
    word = re.match(r"[A-Za-z]+", match.group(0).decode("ascii", "replace")).group(0)  # type: ignore[union-attr]
    before = prefix[-1:] if prefix else ""
    if word.isupper() and word.startswith(("PASSWORD", "PASSWD")) and before.isupper():
        pass  # PGPASSWORD, DBPASSWORD
    elif word[0].isupper() and not word.isupper():
        if before and not (before.islower() or before in "_-"):
            return False  # camelCase: dbPassword, apiKey
    elif before and before not in "_-":
        return False
    lowered = word.lower()
    if lowered in ("key", "pwd"):
        segment = re.split(r"[_\-]", re.sub(r"([a-z])([A-Z])", r"\1_\2", prefix))[-2:]
        last = next((p for p in reversed(segment) if p), "")
        if lowered == "pwd":
            return bool(last)
        return last.lower() in COMPOUND_KEYS
    return True


def _looks_like_password(value: str) -> bool:
    """The literal of `password = "..."`: not a reference to a variable, a type, a call, a
    template, a path or a name; long enough and mixed enough to be a password."""
    if len(value) < 6 or is_placeholder(value) or any(c in value for c in "()[]{}$%<>\\"):
        return False
    if value.startswith(("/", "~", "./", "../")) or "://" in value:
        return False
    if re.fullmatch(r"[A-Za-z_][A-Za-z_.]*", value):  # an identifier or dotted name
        return False
    if re.fullmatch(r"[\d.eE+\-]+", value):  # a number
        return False
    if re.fullmatch(r"[\w.\-]*(?:/[\w.\-]+)+/?|[\w\-]+\.[A-Za-z]{2,5}", value):  # a path
        return False
    return _classes(value) >= 2


def is_secret_variable(name: str) -> bool:
    return name.upper() not in NOT_SECRET_VARIABLES and bool(SECRET_VARIABLE.search(name))


def secret_values(environ: Mapping[str, str]) -> set[str]:
    """What must not travel, from an environment: the values of secret-named variables
    (but not paths), and the password of every `scheme://user:password@` in any value
    (`DATABASE_URL`)."""
    values = set()
    for name, value in environ.items():
        if is_secret_variable(name) and not value.startswith(("/", "~")):
            values.add(value)
        values.update(url_passwords(value))
    return {v for v in values if _worth_finding(v)}


def _worth_finding(value: str) -> bool:
    if len(value) >= MIN_VALUE_LENGTH:
        return True
    return (
        len(value) >= MIN_SHORT_VALUE_LENGTH and _classes(value) >= 2 and not is_placeholder(value)
    )


def secret_file_reason(rel: str, path: Path | str) -> str | None:
    """Why this file is left out of capsules by default, or None (cheap for most names:
    it runs for every listed file)."""
    name = rel.rpartition("/")[2]
    if SECRET_FILE_NAME.match(name):
        return "usually holds secrets"
    if name == "credentials" and PurePosixPath(rel).parts[-2:] == (".aws", "credentials"):
        return "usually holds secrets"
    if name.endswith(PRIVATE_KEY_SUFFIXES):
        try:
            with open(path, "rb") as fh:  # noqa: PTH123 (path may be a str: no Path per file)
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

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        values = sorted(v.encode() for v in secret_values(env))
        self._values = [v for v in values if len(v) >= MIN_VALUE_LENGTH]
        short = sorted((v for v in values if len(v) < MIN_VALUE_LENGTH), key=len, reverse=True)
        self._short = (
            re.compile(
                rb"(?<![A-Za-z0-9])(?:" + b"|".join(map(re.escape, short)) + rb")(?![A-Za-z0-9])"
            )
            if short
            else None
        )
        rules = hashlib.sha256(RULES_VERSION + b"\0")
        for name, pattern in sorted(PATTERNS.items()):
            rules.update(name.encode() + b"\0" + pattern.pattern + b"\0")
        for value in values:
            rules.update(hashlib.sha256(value).digest())
        self.rules_digest = rules.hexdigest()
        """Identifies this rule set (values only by hash): scan results are cached by it."""

    def scan_bytes(self, data: bytes, where: str) -> list[Hit]:
        return self._scan(data, where, 0, 1)

    def _scan(self, data: bytes, where: str, skip_before: int, first_line: int) -> list[Hit]:
        """Hits in `data` ending after `skip_before`: the ones that end before it lay wholly in
        the previous chunk's overlap and were reported with it."""
        found: list[tuple[int, str, bytes]] = []
        lower = data.lower()
        kinds: set[str] = set()
        at: dict[bytes, list[int]] = {}
        for index, start, _end in _GUARD_SEARCH.find_matches_as_indexes(lower, overlapping=True):
            kinds |= _GUARD_KINDS[index]
            at.setdefault(ALL_GUARDS[index], []).append(start)
        for kind, pattern in PATTERNS.items():
            if kind not in kinds:
                continue
            anchors = ANCHORED.get(kind)
            check = VALIDATORS.get(kind)
            matches: Iterable[re.Match[bytes] | None] = (
                pattern.finditer(data)
                if anchors is None
                else (pattern.match(data, pos) for word in anchors for pos in at.get(word, ()))
            )
            for match in matches:
                if match is None:
                    continue
                if match.end() > skip_before and (check is None or check(match)):
                    found.append((match.start(match.lastindex or 0), kind, _secret(match)))
        for value in self._values:
            start = data.find(value, max(0, skip_before - len(value) + 1))
            if start >= 0:
                found.append((start, "value of a secret environment variable", value))
        if self._short is not None:
            for match in self._short.finditer(data, max(0, skip_before - MIN_VALUE_LENGTH)):
                if match.end() > skip_before:
                    found.append(
                        (match.start(), "value of a secret environment variable", match.group(0))
                    )
                    break
        hits, seen = [], set()
        # One secret, one hit: where a specific pattern and a generic one (an assignment, a
        # variable's value) found the same secret, the specific kind is named.
        for start, kind, secret in sorted(found, key=lambda f: (f[0], f[1] in GENERIC)):
            if start not in seen:
                seen.add(start)
                hits.append(
                    Hit(where, first_line + data.count(b"\n", 0, start), kind, mask(secret))
                )
        return hits

    def scan_content(self, data: bytes, where: str) -> list[Hit]:
        """A whole file's content already read (at most SCAN_CHUNK bytes), judged as
        `scan_file` judges the file: binary (a NUL in the first 8 KiB) is not scanned."""
        if len(data) > SCAN_CHUNK:
            raise ValueError("scan_content takes at most SCAN_CHUNK bytes")
        if b"\0" in data[:SNIFF]:
            return []
        return self._scan(data, where, 0, 1)

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
