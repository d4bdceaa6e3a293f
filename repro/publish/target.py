"""Where to publish: the Zenodo site and its API, the token read for it, and the wait cap.

The variables are the ones zenodo-client users already set (ZENODO.md): ``ZENODO_API_TOKEN``,
``ZENODO_SANDBOX_API_TOKEN`` with ``--sandbox``; ``REPRO_ZENODO_URL`` names another site and
``REPRO_ZENODO_MAX_WAIT`` caps every single wait. Nothing here sends a request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from repro.errors import UsageError
from repro.publish.errors import ZenodoAuthError

PRODUCTION_URL = "https://zenodo.org"
SANDBOX_URL = "https://sandbox.zenodo.org"
SANDBOX_DOI_PREFIX = "10.5072"
URL_ENV = "REPRO_ZENODO_URL"
MAX_WAIT_ENV = "REPRO_ZENODO_MAX_WAIT"
TOKEN_ENV = "ZENODO_API_TOKEN"  # noqa: S105 (the variable's name, not a secret)
SANDBOX_TOKEN_ENV = "ZENODO_SANDBOX_API_TOKEN"  # noqa: S105
DEFAULT_MAX_WAIT = 60.0
INDEX_WAIT_ENV = "REPRO_ZENODO_INDEX_WAIT"
DEFAULT_INDEX_WAIT = 30.0
"""How long to keep reading Zenodo's deposition lists for a draft that a lost answer may have
created: the lists are a search index, seen lagging by 5 s and more behind writes."""

TargetKind = Literal["production", "sandbox", "custom"]


@dataclass(frozen=True)
class Target:
    """A Zenodo site: its root URL (the API is under /api) and where its token comes from."""

    kind: TargetKind
    site_url: str
    token_variable: str

    @property
    def api_url(self) -> str:
        return f"{self.site_url}/api"

    @property
    def doi_prefix(self) -> str | None:
        """The prefix DOIs are minted with when the server's pre-reserved DOI cannot be used."""
        return SANDBOX_DOI_PREFIX if self.kind == "sandbox" else None


def normalise_site_url(url: str) -> str:
    """The site root: scheme://host[:port][/path] without a trailing slash or /api."""
    url = url.strip().rstrip("/")
    url = url.removesuffix("/api")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"not a Zenodo site URL: {url!r}", hint="give the site root, like https://zenodo.org"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            "the Zenodo URL must not carry credentials, a query or a fragment",
            hint="give the site root, like https://zenodo.org; the token comes from the "
            "environment",
        )
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError(
            f"refusing plain http for {parts.hostname}: the token would travel unencrypted",
            hint="use https (plain http is allowed for 127.0.0.1/localhost test servers only)",
        )
    return url


def resolve_target(*, sandbox: bool = False, zenodo_url: str | None = None) -> Target:
    """--sandbox, else --zenodo-url, else REPRO_ZENODO_URL, else production."""
    if sandbox and zenodo_url:
        raise UsageError("--sandbox and --zenodo-url exclude each other")
    if sandbox:
        return Target("sandbox", SANDBOX_URL, SANDBOX_TOKEN_ENV)
    url = zenodo_url or os.environ.get(URL_ENV) or None
    if url is None:
        return Target("production", PRODUCTION_URL, TOKEN_ENV)
    site = normalise_site_url(url)
    if site == PRODUCTION_URL:
        return Target("production", site, TOKEN_ENV)
    if site == SANDBOX_URL:
        return Target("sandbox", site, SANDBOX_TOKEN_ENV)
    return Target("custom", site, TOKEN_ENV)


class Secret:
    """A token that does not print: repr, str and format all mask it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def read_token(target: Target) -> Secret:
    """The target's token from the environment (the variables zenodo-client users set)."""
    value = os.environ.get(target.token_variable, "").strip()
    if not value:
        raise ZenodoAuthError(f"no Zenodo token: {target.token_variable} is not set")
    return Secret(value)


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{name} must be a finite number of seconds, not {raw!r}")
    return max(0.0, value)


def max_wait_from_env() -> float:
    return _seconds_from_env(MAX_WAIT_ENV, DEFAULT_MAX_WAIT)


def index_wait_from_env() -> float:
    return _seconds_from_env(INDEX_WAIT_ENV, DEFAULT_INDEX_WAIT)
