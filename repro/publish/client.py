"""Our small Zenodo transport on httpx: Bearer auth to one origin, retries, rate limits, errors.

Why not zenodo-client: it cannot be pointed at another base URL, publishes to production by
default and sends the token in the query string, so every HTTP error message leaks it (see
ZENODO.md). What this client guarantees instead:

- the token travels only as an ``Authorization: Bearer`` header, and only to the configured
  API origin: every URL (including links the server hands out, like the bucket) is checked
  against it before a request is built; it is never part of a URL, message or log;
- no cookies are kept, no redirects are followed on authenticated calls;
- a descriptive User-Agent (generic ones were throttled by Zenodo in 2025);
- 429 waits for Retry-After (capped); 5xx and connection errors are retried with backoff
  only on safe calls (GET, PUT, DELETE); a POST whose outcome is unknown raises
  `OutcomeUnknownError` so that the caller reconciles by reading state instead of repeating
  it; 401/403 are never retried;
- every error body shape Zenodo sends is parsed into one line.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from repro import __version__
from repro.errors import UsageError
from repro.publish.errors import (
    UnsafeLinkError,
    ZenodoAuthError,
    ZenodoError,
    ZenodoNotFoundError,
    ZenodoRateLimitedError,
    ZenodoRequestError,
    ZenodoUnavailableError,
)

PRODUCTION_URL = "https://zenodo.org"
SANDBOX_URL = "https://sandbox.zenodo.org"
SANDBOX_DOI_PREFIX = "10.5072"
URL_ENV = "REPRO_ZENODO_URL"
MAX_WAIT_ENV = "REPRO_ZENODO_MAX_WAIT"
TOKEN_ENV = "ZENODO_API_TOKEN"  # noqa: S105 (the variable's name, not a secret)
SANDBOX_TOKEN_ENV = "ZENODO_SANDBOX_API_TOKEN"  # noqa: S105
DEFAULT_MAX_WAIT = 60.0
USER_AGENT = f"repro/{__version__} (research capsule publisher; httpx/{httpx.__version__})"
CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) while a file moves."""
WaitObserver = Callable[[float, str], None]
"""Called with (seconds, why) before the client sleeps."""

TargetKind = Literal["production", "sandbox", "custom"]


# --- where to publish --------------------------------------------------------------------


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


def max_wait_from_env() -> float:
    raw = os.environ.get(MAX_WAIT_ENV)
    if not raw:
        return DEFAULT_MAX_WAIT
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{MAX_WAIT_ENV} must be a number of seconds, not {raw!r}") from None
    return max(0.0, value)


# --- what Zenodo answers -----------------------------------------------------------------


class Lenient(BaseModel):
    """Answers of a service we do not control: unknown fields are ignored, not an error."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _strip_md5(value: Any) -> Any:
    if isinstance(value, str):
        return value.removeprefix("md5:").lower()
    return value


class RemoteFile(Lenient):
    """A file of a deposition or record, in any of the shapes Zenodo uses for it."""

    id: str = ""
    key: str
    size: int
    md5: str
    links: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        # Legacy deposit files: filename/filesize/checksum (bare hex); bucket and records
        # API: key/size/checksum "md5:HEX".
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("key", data.get("filename"))
            data.setdefault("size", data.get("filesize"))
            data.setdefault("md5", _strip_md5(data.get("checksum")))
            if data.get("id") is not None:
                data["id"] = str(data["id"])
        return data

    @field_validator("md5")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{32}", value):
            raise ValueError("not an md5 checksum")
        return value

    @property
    def download_url(self) -> str | None:
        for name in ("content", "download", "self"):
            link = self.links.get(name)
            if isinstance(link, str):
                return link
        return None


class Deposition(Lenient):
    """A deposition of the legacy deposit API (draft or published)."""

    id: int
    state: str = "unsubmitted"
    submitted: bool = False
    doi: str | None = None
    conceptdoi: str | None = None
    conceptrecid: str | None = None
    record_id: int | None = None
    metadata: dict[str, Any] = {}
    links: dict[str, Any] = {}
    files: list[RemoteFile] = []

    @field_validator("conceptrecid", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value in (None, "") else str(value)

    @property
    def published(self) -> bool:
        return self.submitted and self.state == "done"

    @property
    def reserved_doi(self) -> str | None:
        reserved = self.metadata.get("prereserve_doi")
        if isinstance(reserved, dict) and isinstance(reserved.get("doi"), str):
            return str(reserved["doi"])
        return None

    @property
    def recid(self) -> int:
        reserved = self.metadata.get("prereserve_doi")
        if isinstance(reserved, dict) and str(reserved.get("recid", "")).isdigit():
            return int(reserved["recid"])
        return self.record_id or self.id

    def link(self, name: str) -> str | None:
        value = self.links.get(name)
        return value if isinstance(value, str) and value else None


class UploadedObject(Lenient):
    """The bucket's answer to an upload."""

    key: str
    size: int
    md5: str

    @model_validator(mode="before")
    @classmethod
    def _checksum(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data.setdefault("md5", _strip_md5(data.get("checksum")))
        return data


class Record(Lenient):
    """A published record (GET /api/records/{id})."""

    id: int
    doi: str | None = None
    conceptdoi: str | None = None
    conceptrecid: str | None = None
    metadata: dict[str, Any] = {}
    files: list[RemoteFile] = []
    links: dict[str, Any] = {}

    @field_validator("conceptrecid", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value in (None, "") else str(value)

    @field_validator("files", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        # InvenioRDM's native shape: {"enabled": true, "entries": {key: {...}}}.
        if isinstance(value, dict):
            entries = value.get("entries") or {}
            return list(entries.values()) if isinstance(entries, dict) else entries
        return value


# --- errors ------------------------------------------------------------------------------


class OutcomeUnknownError(ZenodoUnavailableError):
    """A non-idempotent request (POST) was sent but no clear answer came back: it may or may
    not have happened. Callers reconcile by reading state before doing anything again."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _text_of_html(body: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.IGNORECASE | re.DOTALL)
    found = heading or title
    chosen = found.group(1) if found is not None else body
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", chosen)).split())


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str, list[tuple[str, str]]]:
    """One message and the (field, message) pairs, from any error body Zenodo sends:
    ``{"status", "message", "errors": [{"field", "messages": [...]}]}`` (today),
    ``{"errors": [{"field", "message"}]}`` (the docs' older form), ``{"errors": "text"}``,
    ``{"message": "..."}``, and HTML or plain text from the gateway (502/504)."""
    text = body.decode("utf-8", "replace")
    try:
        data: Any = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if data is None:
        if "html" in content_type.lower() or re.search(r"<\s*(html|body|h1|title)", text, re.I):
            return _text_of_html(text)[:300], []
        return " ".join(text.split())[:300] or "(no message)", []
    if not isinstance(data, dict):
        return " ".join(str(data).split())[:300], []
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    fields: list[tuple[str, str]] = []
    errors = data.get("errors")
    if isinstance(errors, str):
        message = f"{message}: {errors}" if message else errors
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, str):
                fields.append(("", item))
                continue
            if not isinstance(item, dict):
                continue
            name = str(item.get("field") or "")
            messages = item.get("messages")
            if isinstance(messages, list):
                fields.extend((name, str(m)) for m in messages)
            elif isinstance(messages, dict):  # nested {"subfield": ["msg"]}
                for sub, msgs in messages.items():
                    for m in msgs if isinstance(msgs, list) else [msgs]:
                        fields.append((f"{name}.{sub}" if name else str(sub), str(m)))
            elif item.get("message") is not None:
                fields.append((name, str(item["message"])))
    if not message and isinstance(data.get("error"), str):
        message = data["error"]
    return message or "(no message)", fields


def describe(message: str, fields: list[tuple[str, str]]) -> str:
    if not fields:
        return message
    details = "; ".join(f"{f}: {m}" if f else m for f, m in fields)
    return f"{message} ({details})" if message != "(no message)" else details


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _no_cookies() -> CookieJar:
    """A jar that refuses every cookie: Zenodo's session cookies are of no use to an API
    client, and keeping none means nothing but the Bearer header identifies us."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


# --- the client --------------------------------------------------------------------------


@dataclass
class ZenodoClient:
    """The one interface to a Zenodo site. Construct it lazily; nothing connects before the
    first request. With no token it is an anonymous reader (records and downloads)."""

    api_url: str
    token: Secret | None = None
    max_wait: float = DEFAULT_MAX_WAIT
    """Longest single sleep (Retry-After and backoff are capped by it)."""
    attempts: int = 5
    backoff: float = 1.0
    on_wait: WaitObserver | None = None
    sleep: Callable[[float], None] = time.sleep
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(120.0, connect=15.0))
    transport: httpx.BaseTransport | None = None
    requests_sent: int = 0
    _http: httpx.Client | None = field(default=None, repr=False)
    _rate_reset: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/")
        self._api_origin = _origin(self.api_url)

    # lifecycle

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                headers={"User-Agent": USER_AGENT},
                cookies=_no_cookies(),
                follow_redirects=self.token is None,
                timeout=self.timeout,
                transport=self.transport,
                trust_env=True,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ZenodoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # safety

    def scrub(self, text: str) -> str:
        """Server text with the token masked, should a server ever echo it back."""
        if self.token is not None and self.token.reveal():
            text = text.replace(self.token.reveal(), "***")
        return text

    def url(self, path: str) -> str:
        return f"{self.api_url}/{path.lstrip('/')}"

    def _show(self, url: str) -> str:
        """A URL as messages show it: relative to the API when it is on the API origin."""
        if url.startswith(self.api_url):
            return "/api" + url[len(self.api_url) :]
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def check_origin(self, url: str) -> None:
        """Refuse to build an authenticated request for a URL outside the API origin."""
        if self.token is not None and _origin(url) != self._api_origin:
            scheme, host, port = _origin(url)
            raise UnsafeLinkError(
                f"Zenodo handed out a link to {scheme}://{host}:{port}, not the configured "
                f"API origin; the token is not sent there"
            )

    # the one request loop

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.reveal()}"
        headers.update(extra or {})
        return headers

    def wait(self, seconds: float, why: str) -> None:
        seconds = max(0.0, min(seconds, self.max_wait))
        if self.on_wait is not None:
            self.on_wait(seconds, why)
        if seconds > 0:
            self.sleep(seconds)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining == "0" and reset and reset.strip().isdigit():
            self._rate_reset = float(reset)
        else:
            self._rate_reset = None

    def _respect_rate_limit(self) -> None:
        if self._rate_reset is not None:
            ahead = self._rate_reset - time.time()
            self._rate_reset = None
            if ahead > 0:
                self.wait(ahead, "rate limit: no requests left in this window")

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        upload: Path | None = None,
        progress: Progress | None = None,
        safe: bool | None = None,
    ) -> httpx.Response:
        """Send one call with the retry policy; return a 2xx response or raise a ZenodoError.

        `safe` (default: every method but POST) says whether repeating the call cannot do
        harm: only safe calls are repeated after a 5xx or a connection lost mid-request.
        """
        self.check_origin(url)
        idempotent = method != "POST" if safe is None else safe
        shown = f"{method} {self._show(url)}"
        extra: dict[str, str] = {}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode()
            # Exactly this: Zenodo answers 415 to "application/json; charset=utf-8".
            extra["Content-Type"] = "application/json"
        elif upload is not None:
            extra["Content-Type"] = "application/octet-stream"
            extra["Content-Length"] = str(upload.stat().st_size)
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.attempts
            self._respect_rate_limit()
            content: bytes | Iterator[bytes] | None = body
            if upload is not None:
                content = _read_chunks(upload, progress)
            try:
                self.requests_sent += 1
                response = self._client().request(
                    method, url, headers=self._headers(extra), content=content
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the server: repeating is harmless even for a POST.
                if last:
                    raise ZenodoUnavailableError(
                        f"{shown}: cannot connect ({type(exc).__name__})"
                    ) from None
                self.wait(self._backoff(attempt), f"cannot connect ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                reason = f"connection lost ({type(exc).__name__})"
                if not idempotent:
                    raise OutcomeUnknownError(f"{shown}: {reason}") from None
                if last:
                    raise ZenodoUnavailableError(f"{shown}: {reason}") from None
                self.wait(self._backoff(attempt), reason)
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status < 300:
                return response
            message, fields = parse_error_body(
                response.content, response.headers.get("Content-Type", "")
            )
            message, fields = self.scrub(message), [(f, self.scrub(m)) for f, m in fields]
            text = describe(message, fields)
            if status == 429:
                if last:
                    wait = _retry_after(response)
                    raise ZenodoRateLimitedError(
                        f"{shown}: rate limited by Zenodo"
                        + (f" (retry after {wait:.0f} s)" if wait is not None else "")
                    )
                wait = _retry_after(response)
                self.wait(
                    self._backoff(attempt) if wait is None else wait,
                    f"rate limited (Retry-After: {response.headers.get('Retry-After', '-')})",
                )
                continue
            if status in (401, 403):
                if self.token is None:  # an anonymous read: a restricted record, not a token
                    raise ZenodoRequestError(
                        f"{shown}: access denied ({status} {text})",
                        hint="the record may be restricted; download it from its page",
                        status=status,
                    )
                raise ZenodoAuthError(f"{shown}: Zenodo refused the token ({status} {text})")
            if status >= 500:
                if not idempotent:
                    raise OutcomeUnknownError(f"{shown}: {status} {text}", status)
                if last:
                    raise ZenodoUnavailableError(
                        f"{shown}: {status} {text} (after {attempt} attempts)"
                    )
                self.wait(self._backoff(attempt), f"{status} from Zenodo")
                continue
            if status == 404:
                raise ZenodoNotFoundError(
                    f"{shown}: not found ({text})", status=status, field_errors=fields
                )
            if 300 <= status < 400:
                raise ZenodoRequestError(f"{shown}: unexpected redirect ({status})", status=status)
            raise ZenodoRequestError(
                f"{shown}: {status} {text}",
                hint=None,
                status=status,
                field_errors=fields,
            )

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff * 2 ** (attempt - 1))

    # JSON helpers

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ZenodoError(f"Zenodo answered {what} with something that is not JSON") from None

    def _deposition(self, response: httpx.Response, what: str) -> Deposition:
        try:
            return Deposition.model_validate(self._json(response, what))
        except ValidationError as exc:
            raise ZenodoError(
                f"unexpected answer to {what}: {exc.errors()[0]['msg']} "
                f"at {'.'.join(map(str, exc.errors()[0]['loc']))}"
            ) from None

    # the deposit API

    def create(self, metadata: dict[str, Any] | None = None) -> Deposition:
        body = {"metadata": metadata} if metadata else {}
        response = self.request("POST", self.url("deposit/depositions"), json_body=body)
        return self._deposition(response, "create")

    def get(self, deposition_id: int) -> Deposition:
        response = self.request("GET", self.url(f"deposit/depositions/{deposition_id}"))
        return self._deposition(response, "read")

    def get_link(self, url: str) -> Deposition:
        return self._deposition(self.request("GET", url), "read")

    def list_drafts(self) -> list[Deposition]:
        response = self.request("GET", self.url("deposit/depositions?status=draft&size=100"))
        data = self._json(response, "list")
        if not isinstance(data, list):
            raise ZenodoError("unexpected answer to the list of drafts: not a JSON array")
        out = []
        for item in data:
            try:
                out.append(Deposition.model_validate(item))
            except ValidationError:
                continue  # a draft we cannot read is not one of ours
        return out

    def update_metadata(self, deposition_id: int, metadata: dict[str, Any]) -> Deposition:
        response = self.request(
            "PUT",
            self.url(f"deposit/depositions/{deposition_id}"),
            json_body={"metadata": metadata},
        )
        return self._deposition(response, "metadata update")

    def list_files(self, deposition_id: int) -> list[RemoteFile]:
        response = self.request("GET", self.url(f"deposit/depositions/{deposition_id}/files"))
        data = self._json(response, "files")
        try:
            return [RemoteFile.model_validate(item) for item in data]
        except (ValidationError, TypeError):
            raise ZenodoError("unexpected answer to the list of files") from None

    def delete_file(self, deposition_id: int, file_id: str) -> None:
        url = self.url(f"deposit/depositions/{deposition_id}/files/{file_id}")
        try:
            self.request("DELETE", url)
        except ZenodoNotFoundError:
            # DELETE can time out and then 404 once it went through (ZENODO.md): gone is gone.
            return

    def upload(
        self, bucket_url: str, key: str, path: Path, progress: Progress | None
    ) -> UploadedObject:
        """PUT the file into the bucket (same key again replaces it); Zenodo's answer."""
        url = f"{bucket_url.rstrip('/')}/{quote(key, safe='')}"
        response = self.request("PUT", url, upload=path, progress=progress)
        try:
            return UploadedObject.model_validate(self._json(response, "upload"))
        except ValidationError:
            raise ZenodoError("unexpected answer to the upload: no key, size or md5") from None

    def action(self, deposition_id: int, name: str) -> httpx.Response:
        return self.request("POST", self.url(f"deposit/depositions/{deposition_id}/actions/{name}"))

    def publish(self, deposition_id: int) -> Deposition:
        return self._deposition(self.action(deposition_id, "publish"), "publish")

    def new_version(self, deposition_id: int) -> Deposition:
        return self._deposition(self.action(deposition_id, "newversion"), "newversion")

    # records (anonymous)

    def record(self, record_id: int) -> Record:
        response = self.request("GET", self.url(f"records/{record_id}"))
        try:
            return Record.model_validate(self._json(response, "record"))
        except ValidationError as exc:
            raise ZenodoError(
                f"unexpected answer for record {record_id}: {exc.errors()[0]['msg']}"
            ) from None

    def download(self, url: str, dest: Path, progress: Progress | None) -> tuple[str, str, int]:
        """Stream `url` into `dest`; (md5, sha256, size) of what arrived. Retried from the
        start on 5xx and lost connections (a GET is safe)."""
        self.check_origin(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._client().stream("GET", url, headers=self._headers(None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        message, fields = parse_error_body(
                            response.content, response.headers.get("Content-Type", "")
                        )
                        text = describe(self.scrub(message), fields)
                        if response.status_code >= 500 and attempt < self.attempts:
                            self.wait(self._backoff(attempt), f"{response.status_code}")
                            continue
                        error = (
                            ZenodoUnavailableError
                            if response.status_code >= 500
                            else ZenodoRequestError
                        )
                        raise error(f"download {self._show(url)}: {response.status_code} {text}")
                    total_header = response.headers.get("Content-Length")
                    total = int(total_header) if total_header and total_header.isdigit() else None
                    md5, sha, done = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
                    with dest.open("wb") as fh:
                        for chunk in response.iter_bytes(CHUNK):
                            fh.write(chunk)
                            md5.update(chunk)
                            sha.update(chunk)
                            done += len(chunk)
                            if progress is not None:
                                progress(done, total)
                    return md5.hexdigest(), sha.hexdigest(), done
            except httpx.TransportError as exc:
                if attempt >= self.attempts:
                    raise ZenodoUnavailableError(
                        f"download {self._show(url)}: connection lost ({type(exc).__name__})"
                    ) from None
                self.wait(self._backoff(attempt), f"connection lost ({type(exc).__name__})")


def _read_chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            done += len(chunk)
            if progress is not None:
                progress(done, total)
            yield chunk
