"""Remote data: download once into the cache, check its sha256, record it as a reference."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from repro.capsule.manifest import RemoteData
from repro.config.models import DataSpec
from repro.errors import DataChecksumError, NetworkError, ReproError
from repro.paths import cache_dir, mark_used

CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 30.0, 300.0
"""httpx is imported when something is downloaded, not by every replay (~0.3 s)."""
Progress = Callable[[int, int | None], None]
"""Called with (bytes received so far, bytes announced or None) as a download goes."""
REPORT_EVERY_S = 2.0


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def reporting(say: Callable[[str], None], label: str, every: float = REPORT_EVERY_S) -> Progress:
    """A Progress that tells `say` how a download goes, at most every `every` seconds and
    at its end: `downloading data/big.csv: 12.0 of 40.0 MiB, 4.1 MiB/s`."""
    start = time.monotonic()
    last = [start]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - last[0] < every and not finished:
            return
        last[0] = now
        rate = done / max(now - start, 1e-3)
        of = f" of {_mib(total)}" if total else ""
        say(f"downloading {label}: {_mib(done)}{of}, {_mib(int(rate))}/s")

    return progress


def fetch_remote(
    spec: DataSpec,
    *,
    offline: bool = False,
    size: int | None = None,
    progress: Progress | None = None,
) -> tuple[RemoteData, Path]:
    """The checked local copy of a remote data file (downloaded only when not cached;
    `offline`: never download). `size`: the size the capsule recorded -- a download is cut
    off beyond it (at capture nothing declares one: the sha256 alone decides). `progress`
    hears how the download goes."""
    if spec.url is None or spec.sha256 is None:
        raise ValueError(f"not remote data: {spec.path}")  # DataSpec guarantees both
    store = cache_dir() / "data"
    store.mkdir(parents=True, exist_ok=True)
    cached = store / spec.sha256
    if not cached.is_file():
        if offline:
            raise NetworkError(
                f"remote data {spec.path} is not cached and --offline forbids fetching it",
                hint="replay once with the network, or without --offline",
            )
        _download(spec.url, spec.sha256, cached, size, progress)
    mark_used("data", spec.sha256)
    return RemoteData(
        url=spec.url, sha256=spec.sha256, size=cached.stat().st_size, path=spec.path
    ), cached


def _download(
    url: str, sha256: str, dest: Path, size: int | None, progress: Progress | None = None
) -> None:
    """Stream into a temporary file next to `dest`, never more than `size` bytes; renamed
    into place only when the sha256 matches (nothing else is kept)."""
    import httpx

    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
    digest, done = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response,
        ):
            if response.status_code >= 400:
                raise ReproError(
                    f"cannot download {url}: HTTP {response.status_code}",
                    hint="check the URL in [[data]] url",
                )
            announced = response.headers.get("Content-Length", "")
            total = int(announced) if announced.isdigit() else size
            if size is not None and announced.isdigit() and int(announced) > size:
                raise DataChecksumError(
                    f"{url} announces {announced} bytes; the capsule recorded {size}"
                )
            for chunk in response.iter_bytes(1 << 20):
                done += len(chunk)
                if size is not None and done > size:
                    raise DataChecksumError(
                        f"{url} sends more than the {size} bytes the capsule recorded; "
                        "stopped there"
                    )
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
        if digest.hexdigest() != sha256:
            raise DataChecksumError(
                f"sha256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}"
            )
        tmp.replace(dest)
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot download {url}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
