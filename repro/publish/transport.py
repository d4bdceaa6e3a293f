"""HTTP to one Zenodo API origin: Bearer auth, retries, rate limits, one line per error.

Why not zenodo-client: it cannot be pointed at another base URL, publishes to production by
default and sends the token in the query string, so every HTTP error message leaks it (see
ZENODO.md). What this transport guarantees instead:

- the token travels only as an ``Authorization: Bearer`` header, and only to the configured
  API origin: every URL (including links the server hands out, like the bucket) is checked
  against it before a request is built; it is never part of a URL, message or log;
- no cookies are kept, no redirects are followed on authenticated calls;
- a descriptive User-Agent (generic ones were throttled by Zenodo in 2025);
- 429 waits for Retry-After (capped); 5xx and connection errors are retried with backoff
  only on safe calls (GET, PUT, DELETE); a POST whose outcome is unknown raises
  `OutcomeUnknownError` so that the caller reconciles by reading state instead of repeating
  it; 401/403 are never retried;
- every error body shape Zenodo sends is parsed into one line (`repro.publish.error_body`).

The endpoints themselves are `repro.publish.client.ZenodoClient`'s.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from repro import __version__
from repro.publish.api import Progress, WaitObserver
from repro.publish.error_body import describe, parse_error_body
from repro.publish.errors import (
    DownloadTooLargeError,
    OutcomeUnknownError,
    UnsafeLinkError,
    ZenodoAuthError,
    ZenodoError,
    ZenodoNotFoundError,
    ZenodoRateLimitedError,
    ZenodoRequestError,
    ZenodoUnavailableError,
)
from repro.publish.masking import TokenMask
from repro.publish.models import DownloadedFile
from repro.publish.target import DEFAULT_MAX_WAIT, Secret

USER_AGENT = f"repro/{__version__} (research capsule publisher; httpx/{httpx.__version__})"
CHUNK = 1 << 20


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


# --- the transport ---------------------------------------------------------------------


@dataclass
class ZenodoTransport:
    """Requests to one Zenodo API origin with the retry policy. Nothing connects before the
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
    http_transport: httpx.BaseTransport | None = None
    """An httpx transport to use instead of the network's."""
    requests_sent: int = 0
    _http: httpx.Client | None = field(default=None, repr=False)
    _rate_reset: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/")
        self._api_origin = _origin(self.api_url)
        self._mask = TokenMask(self.token.reveal() if self.token is not None else None)

    # lifecycle

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                headers={"User-Agent": USER_AGENT},
                cookies=_no_cookies(),
                follow_redirects=self.token is None,
                timeout=self.timeout,
                transport=self.http_transport,
                trust_env=True,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ZenodoTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # safety

    def scrub(self, text: str) -> str:
        """Server text with the token masked in every form, should a server ever echo it
        back (`repro.publish.masking`)."""
        return self._mask.text(text)

    def _error(self, response: httpx.Response) -> str:
        """An error answer as one line: masked as a whole first, then parsed and cut."""
        body = self._mask.body(response.content)
        message, fields = parse_error_body(body, response.headers.get("Content-Type", ""))
        return describe(self.scrub(message), [(f, self.scrub(m)) for f, m in fields])

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
                self.wait(self.backoff_for(attempt), f"cannot connect ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                reason = f"connection lost ({type(exc).__name__})"
                if not idempotent:
                    raise OutcomeUnknownError(f"{shown}: {reason}") from None
                if last:
                    raise ZenodoUnavailableError(f"{shown}: {reason}") from None
                self.wait(self.backoff_for(attempt), reason)
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status < 300:
                return response
            text = self._error(response)
            fields = parse_error_body(self._mask.body(response.content))[1]
            fields = [(f, self.scrub(m)) for f, m in fields]
            if status == 429:
                if last:
                    wait = _retry_after(response)
                    raise ZenodoRateLimitedError(
                        f"{shown}: rate limited by Zenodo"
                        + (f" (retry after {wait:.0f} s)" if wait is not None else "")
                    )
                wait = _retry_after(response)
                self.wait(
                    self.backoff_for(attempt) if wait is None else wait,
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
                self.wait(self.backoff_for(attempt), f"{status} from Zenodo")
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

    def backoff_for(self, attempt: int) -> float:
        return float(self.backoff * 2 ** (attempt - 1))

    def json(self, response: httpx.Response, what: str) -> Any:
        """The answer's JSON; an answer that is not JSON is an error of its own."""
        try:
            # Every string masked, every link stripped of credential parameters, before
            # anything parses, prints or journals the answer.
            return self._mask.answer(response.json())
        except ValueError:
            raise ZenodoError(f"Zenodo answered {what} with something that is not JSON") from None

    def download(
        self, url: str, dest: Path, progress: Progress | None, limit: int | None = None
    ) -> DownloadedFile:
        """Stream `url` into `dest`; what arrived, measured on the way. Retried from the
        start on 5xx and lost connections (a GET is safe). `limit`: the size the record
        declares -- a longer answer (by its Content-Length, or by what arrives) is cut off
        there and refused, so a lying server cannot fill the disk."""
        self.check_origin(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._client().stream("GET", url, headers=self._headers(None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        text = self._error(response)
                        if response.status_code >= 500 and attempt < self.attempts:
                            self.wait(self.backoff_for(attempt), f"{response.status_code}")
                            continue
                        error = (
                            ZenodoUnavailableError
                            if response.status_code >= 500
                            else ZenodoRequestError
                        )
                        raise error(f"download {self._show(url)}: {response.status_code} {text}")
                    total_header = response.headers.get("Content-Length")
                    total = int(total_header) if total_header and total_header.isdigit() else None
                    if limit is not None and total is not None and total > limit:
                        raise DownloadTooLargeError(
                            f"download {self._show(url)}: {total} bytes announced, the record "
                            f"declares {limit}"
                        )
                    md5, sha, done = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
                    with dest.open("wb") as fh:
                        for chunk in response.iter_bytes(CHUNK):
                            if limit is not None and done + len(chunk) > limit:
                                raise DownloadTooLargeError(
                                    f"download {self._show(url)}: more than the {limit} bytes "
                                    "the record declares; stopped there"
                                )
                            fh.write(chunk)
                            md5.update(chunk)
                            sha.update(chunk)
                            done += len(chunk)
                            if progress is not None:
                                progress(done, total)
                    return DownloadedFile(md5.hexdigest(), sha.hexdigest(), done)
            except httpx.TransportError as exc:
                if attempt >= self.attempts:
                    raise ZenodoUnavailableError(
                        f"download {self._show(url)}: connection lost ({type(exc).__name__})"
                    ) from None
                self.wait(self.backoff_for(attempt), f"connection lost ({type(exc).__name__})")


def _read_chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            done += len(chunk)
            if progress is not None:
                progress(done, total)
            yield chunk
