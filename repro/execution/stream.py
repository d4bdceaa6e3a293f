"""A run's output as it is written: lines handed to an observer while the command runs.

The command still writes to files (its tails are read from them afterwards, as before); a
follower thread reads what each file gained every few milliseconds and hands whole lines to
an `Echo`, so a long run is not silent. Core code never prints: the CLI passes the echo in
(repro/report/live.py), or none (-q, a library caller), and then nothing here runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

StreamName = Literal["stdout", "stderr"]
Echo = Callable[[str, StreamName, str], None]
"""Called with (the point's label, stdout or stderr, one line without its newline). The
label is the sweep point (`seed=3`) or "" for a run of one point."""
LineSink = Callable[[StreamName, str], None]
"""An Echo with its label bound: what one running command reports to."""

POLL_S = 0.05
MAX_LINE = 4000
"""A line longer than this is handed on in pieces (a progress bar redrawn with \\r, say)."""


def bound(echo: Echo | None, label: str) -> LineSink | None:
    """The sink one point reports to, or None when nobody listens."""
    if echo is None:
        return None

    def sink(stream: StreamName, line: str) -> None:
        echo(label, stream, line)

    return sink


class _Splitter:
    """Bytes in, whole decoded lines out (a partial line waits for its end, or for close)."""

    def __init__(self, stream: StreamName, sink: LineSink) -> None:
        self.stream = stream
        self.sink = sink
        self.pending = b""

    def feed(self, data: bytes) -> None:
        self.pending += data
        *lines, self.pending = self.pending.replace(b"\r\n", b"\n").split(b"\n")
        for line in lines:
            self._emit(line)
        while len(self.pending) > MAX_LINE:
            self._emit(self.pending[:MAX_LINE])
            self.pending = self.pending[MAX_LINE:]

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
        self.pending = b""

    def _emit(self, raw: bytes) -> None:
        # A carriage return redraws a line in place: what the reader sees is its last state.
        text = raw.decode("utf-8", errors="replace").rsplit("\r", 1)[-1]
        self.sink(self.stream, text)


class FileFollower:
    """Follows files a command writes while it runs (`with` it around the wait): every line
    of each reaches its sink, the last ones when the block ends. A file that does not exist
    yet (a Slurm task not started) is read once it does.

    Without `with`, nothing runs in the background: the caller calls `poll` while it waits
    (the local runner, from its wait loop) and `finish` once the command has ended."""

    def __init__(
        self,
        files: dict[StreamName, Path] | None,
        sink: LineSink | None = None,
        *,
        sources: list[tuple[StreamName, Path, LineSink]] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.sources = list(sources or [])
        if files is not None and sink is not None:
            self.sources += [(name, path, sink) for name, path in files.items()]
        self.poll_s = poll_s
        self._splitters = [_Splitter(name, sink) for name, _, sink in self.sources]
        self._offsets = [0] * len(self.sources)
        self._fds: list[int | None] = [None] * len(self.sources)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="run-output", daemon=True)

    def __enter__(self) -> FileFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def poll(self) -> int:
        """Hand on what each file gained since the last look (whole lines); the bytes read."""
        got = 0
        for i, (_, path, _) in enumerate(self.sources):
            fd = self._fds[i]
            if fd is None:
                try:  # kept open: one pread a look, not an open, seek, read and close
                    fd = self._fds[i] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue  # not there yet
            try:
                data = os.pread(fd, 1 << 20, self._offsets[i])
            except OSError:
                continue
            if data:
                self._splitters[i].feed(data)
                self._offsets[i] += len(data)
                got += len(data)
        return got

    def finish(self) -> None:
        """The last bytes, and a last line without its newline."""
        while self.poll():
            pass
        for splitter in self._splitters:
            splitter.close()
        for i, fd in enumerate(self._fds):
            if fd is not None:
                os.close(fd)
                self._fds[i] = None

    def _follow(self) -> None:
        while True:
            finished = self._done.wait(self.poll_s)  # once more after the end: the last bytes
            if finished:
                break
            self.poll()
        self.finish()


class ChunkFollower:
    """Follows a stream that is read by a blocking iterator of byte chunks (a container's
    log): `follow(stream, chunks)` in a thread of its own; `join` waits for the last line."""

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self._threads: list[threading.Thread] = []

    def follow(self, stream: StreamName, chunks: Callable[[], Iterable[bytes]]) -> None:
        def pump() -> None:
            splitter = _Splitter(stream, self.sink)
            try:
                for chunk in chunks():
                    splitter.feed(chunk)
            except Exception:  # noqa: S110 - the echo is best effort; tails are kept anyway
                pass
            splitter.close()

        thread = threading.Thread(target=pump, name=f"run-{stream}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
