"""`[[data]]` URL downloads: bounded by the recorded size, kept only when the sha256 matches.

A real HTTP server on 127.0.0.1 serves an honest file, one that sends far more than recorded
(with and without announcing it), and one with the right size and the wrong bytes."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repro.config.models import DataSpec
from repro.errors import DataChecksumError
from repro.paths import cache_dir
from repro.remote_data import fetch_remote, reporting

GOOD = b"x,y\n" + b"1,2\n" * 255  # 1 KiB
HUGE = 300 << 20  # what a lying server offers: 300 MiB


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent: dict[str, int] = {}  # noqa: RUF012 (shared across the handler's instances on purpose)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        if self.path == "/announced":  # says 300 MiB up front
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            self._stream(HUGE)
        elif self.path == "/unannounced":  # chunked: only reading tells
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._stream(HUGE, chunked=True)
        else:
            body = GOOD if self.path == "/good" else bytes([GOOD[0] ^ 1]) + GOOD[1:]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _stream(self, total: int, *, chunked: bool = False) -> None:
        block = b"0" * (1 << 16)
        sent = 0
        try:
            while sent < total:
                self.wfile.write(
                    f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
                )
                sent += len(block)
        except OSError:
            pass  # the client hung up: what the test wants
        finally:
            _Handler.sent[self.path] = sent
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _spec(url: str) -> DataSpec:
    return DataSpec(path="data/t.csv", url=url, sha256=hashlib.sha256(GOOD).hexdigest())


def _store() -> list[Path]:
    folder = cache_dir() / "data"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("path", ["/announced", "/unannounced"])
def test_a_download_larger_than_recorded_is_cut_off_and_not_kept(server: str, path: str) -> None:
    before = _store()
    with pytest.raises(DataChecksumError, match="1024"):
        fetch_remote(_spec(server + path), size=len(GOOD))
    assert _store() == before  # no partial file, nothing renamed into place
    assert _Handler.sent.get(path, 0) < 64 << 20  # stopped long before the 300 MiB


def test_wrong_bytes_of_the_right_size_are_not_kept_and_the_honest_file_is(server: str) -> None:
    before = _store()
    with pytest.raises(DataChecksumError, match="sha256 mismatch"):
        fetch_remote(_spec(server + "/corrupt"), size=len(GOOD))
    assert _store() == before
    ref, cached = fetch_remote(_spec(server + "/good"), size=len(GOOD))
    assert cached.read_bytes() == GOOD and ref.size == len(GOOD)


def test_a_download_reports_its_bytes_and_rate(server: str) -> None:
    said: list[str] = []
    calls: list[tuple[int, int | None]] = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total))
        reporting(said.append, "data/t.csv", every=0)(done, total)

    (cache_dir() / "data" / hashlib.sha256(GOOD).hexdigest()).unlink(missing_ok=True)
    fetch_remote(_spec(server + "/good"), progress=progress)
    assert calls[-1] == (len(GOOD), len(GOOD))
    assert re.fullmatch(r"downloading data/t\.csv: 0\.0 MiB of 0\.0 MiB, [\d.]+ MiB/s", said[-1])
    # Throttled: a slow stream of chunks is one line per interval, plus the last.
    throttled: list[str] = []
    report = reporting(throttled.append, "x", every=60)
    for done in range(1, 100):
        report(done, 100)
    report(100, 100)
    assert len(throttled) == 1 and "x: 0.0 MiB of 0.0 MiB" in throttled[0]
