"""Streaming, parallel sha256 of files, with a stat cache so unchanged files are not re-read."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Generic, NamedTuple, TypeVar

from repro.errors import FileChangedError
from repro.forking import forking, quiet_worker, result_of

CHUNK = 1 << 20
# A file modified within this many seconds of hashing may change again within the same
# mtime tick unnoticed ("racily clean" in git's terms), so it is not cached.
RACY_WINDOW_S = 2.0
CORRUPT_ERRORS = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_T = TypeVar("_T")


class FileStat(NamedTuple):
    """The four fields of a stat the cache keys on: a third of an os.stat_result's memory
    (kept for every listed file)."""

    st_size: int
    st_mtime_ns: int
    st_ino: int
    st_ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class Digest:
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    """Changes on every write and cannot be set back (unlike mtime): part of the cache key."""


def sha256_file(path: Path, buffer: bytearray | None = None) -> tuple[str, int]:
    """sha256 and byte count of a file, read in 1 MiB chunks (hashlib releases the GIL)."""
    buf = buffer if buffer is not None else bytearray(CHUNK)
    view = memoryview(buf)
    digest = hashlib.sha256()
    total = 0
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
            total += n
    return digest.hexdigest(), total


def read_small(path: Path | str, size: int) -> bytes | None:
    """The whole content of a file of at most CHUNK bytes, in one read; None if it turned
    out bigger than `size` said (the caller then streams it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, size + 1)
        while len(data) <= size:
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    return data if len(data) <= size else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StatCache:
    """sha256 by (path, size, mtime_ns, inode), in one SQLite file under the cache dir.

    The cache only saves time, so it never stops a capture: a corrupt or truncated file is
    set aside (renamed `*.corrupt-<time>`) and a fresh one started; any other SQLite failure
    (locked past the timeout, a read-only cache folder) turns the cache off for this
    process. `warn` hears about either, once.
    """

    def __init__(self, db_path: Path, warn: Callable[[str], None] | None = None) -> None:
        self._db_path = db_path
        self._warn = warn or (lambda _m: None)
        self._off = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_path, timeout=30)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hashes2 (path TEXT PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, inode INTEGER, ctime_ns INTEGER, sha256 TEXT)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS scans"
                " (sha256 TEXT, rules TEXT, PRIMARY KEY (sha256, rules))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS listings (prefix TEXT PRIMARY KEY,"
                " fingerprint TEXT, shas BLOB, checksum TEXT, scanned TEXT)"
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _do(self, what: Callable[[sqlite3.Connection], _T], default: _T) -> _T:
        """`what` on a connection; on a corrupt file, set it aside and try once more."""
        for attempt in (1, 2):
            if self._off:
                return default
            try:
                conn = self._connect()
                try:
                    return what(conn)
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                corrupt = getattr(exc, "sqlite_errorname", "") in CORRUPT_ERRORS
                if corrupt and attempt == 1 and self._set_aside():
                    continue
                self._off = True
                self._warn(f"hash cache {self._db_path} unusable ({exc}): not using it")
        return default

    def _set_aside(self) -> bool:
        aside = self._db_path.with_name(f"{self._db_path.name}.corrupt-{int(time.time())}")
        try:
            self._db_path.replace(aside)
            for suffix in ("-journal", "-wal", "-shm"):
                Path(f"{self._db_path}{suffix}").unlink(missing_ok=True)
        except OSError:
            return False
        self._warn(f"hash cache {self._db_path} was corrupt: set aside as {aside.name}, rebuilt")
        return True

    def lookup_under(self, root: Path) -> dict[str, Digest]:
        prefix = str(root).rstrip("/") + "/"

        def query(conn: sqlite3.Connection) -> dict[str, Digest]:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, inode, ctime_ns, sha256 FROM hashes2"
                " WHERE path >= ? AND path < ?",
                (prefix, prefix[:-1] + "0"),  # '0' sorts right after '/'
            ).fetchall()
            return {row[0]: Digest(row[5], row[1], row[2], row[3], row[4]) for row in rows}

        return self._do(query, {})

    def rows_under(self, prefix: str) -> dict[str, tuple[str, int, int, int, int, str]]:
        """Every entry whose path starts with `prefix` (a folder ending in /), in one query,
        as the rows themselves: (path, size, mtime_ns, inode, ctime_ns, sha256), no object
        per file (the stat comparison runs for every file of a million-file study)."""

        def query(conn: sqlite3.Connection) -> dict[str, tuple[str, int, int, int, int, str]]:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, inode, ctime_ns, sha256 FROM hashes2"
                " WHERE path >= ? AND path < ?",
                (prefix, prefix[:-1] + "0"),  # '0' sorts right after '/'
            )
            return {row[0]: row for row in rows}

        return self._do(query, {})

    def store_rows(self, rows: Iterable[tuple[str, int, int, int, int, str]]) -> None:
        """Entries as (path, size, mtime_ns, inode, ctime_ns, sha256), in one transaction,
        in path order (B-tree inserts in order are several times cheaper)."""
        rows = sorted(rows)

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO hashes2 VALUES (?, ?, ?, ?, ?, ?)", rows)

        self._do(insert, None)

    def clean_scans(self, rules: str) -> set[str]:
        """sha256 of contents already scanned clean under this secret-scanning rule set."""

        def query(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute("SELECT sha256 FROM scans WHERE rules = ?", (rules,)).fetchall()
            return {row[0] for row in rows}

        return self._do(query, set())

    def store_clean(self, rules: str, shas: Iterable[str]) -> None:
        # In key order: B-tree inserts in order cost a quarter of random ones (100k: 1.4 s
        # against 5.5 s on this machine).
        rows = [(s, rules) for s in sorted(shas)]

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR IGNORE INTO scans VALUES (?, ?)", rows)

        self._do(insert, None)

    def store(self, entries: Iterable[tuple[str, Digest]]) -> None:
        rows = [(p, d.size, d.mtime_ns, d.inode, d.ctime_ns, d.sha256) for p, d in entries]

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO hashes2 VALUES (?, ?, ?, ?, ?, ?)", rows)

        self._do(insert, None)

    def listing(self, prefix: str, fingerprint: str, count: int) -> Listed | None:
        """What the last capture of the folder `prefix` recorded, when its listing had this
        `fingerprint` (see `listing_fingerprint`) and its record is intact: the sha256 of
        its `count` files, in listing order, and the key its secret scan was clean under."""

        def query(conn: sqlite3.Connection) -> Listed | None:
            row = conn.execute(
                "SELECT fingerprint, shas, checksum, scanned FROM listings WHERE prefix = ?",
                (prefix,),
            ).fetchone()
            if row is None or row[0] != fingerprint:
                return None
            shas = row[1]
            if not isinstance(shas, bytes) or len(shas) != 32 * count:
                return None
            scanned = row[3] if isinstance(row[3], str) else ""
            if row[2] != listing_checksum(fingerprint, shas, scanned):
                return None  # a damaged record is not trusted, only ignored
            hexed = shas.hex()
            return Listed([hexed[i : i + 64] for i in range(0, len(hexed), 64)], scanned)

        return self._do(query, None)

    def store_listing(
        self, prefix: str, fingerprint: str, sha256: Sequence[str], scanned: str
    ) -> None:
        """Record the listing of the folder `prefix` (replacing the one before): its
        fingerprint, its files' sha256 in order, and the key of the clean secret scan."""
        shas = bytes.fromhex("".join(sha256))
        checksum = listing_checksum(fingerprint, shas, scanned)

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?, ?)",
                    (prefix, fingerprint, shas, checksum, scanned),
                )

        self._do(insert, None)

    def forget(self, paths: Iterable[Path]) -> None:
        """Drop the entries of `paths` (a file whose recorded digest proved wrong), and
        every recorded listing (one of them holds that digest too)."""
        rows = [(str(p.absolute()),) for p in paths]

        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("DELETE FROM hashes2 WHERE path = ?", rows)
                conn.execute("DELETE FROM listings")

        self._do(delete, None)


def listing_checksum(fingerprint: str, shas: bytes, scanned: str) -> str:
    """What a listing record is checked by on read: all three of its values."""
    return hashlib.sha256(f"{fingerprint}\0{scanned}\0".encode() + shas).hexdigest()


class Listed(NamedTuple):
    """A project folder's listing as its last capture recorded it (`StatCache.listing`)."""

    sha256: list[str]
    scanned: str
    """The key its secret scan was clean under (rules and allowed files)."""


LISTING_VERSION = 1
"""Part of every listing fingerprint: a new way of listing or hashing changes it."""


def cache_prefix(prefix: str) -> str:
    """The stat cache's key for the folder `prefix` (a folder ending in /, or ""): its
    absolute path, ending in /, no symlink resolved."""
    folder = os.path.abspath(prefix or ".")  # noqa: PTH100 (no symlink resolved, as before)
    return folder if folder.endswith("/") else folder + "/"


def any_racy(stats: Sequence[FileStat], listed_at_ns: int) -> bool:
    """Whether a file was changed too recently for its stat to vouch for its bytes (the
    stat cache keeps no such file; nor is a listing holding one recorded). Measured from
    `listed_at_ns`, the clock before the listing: a file changed just before it was stat'ed
    may change again within its file system's timestamp granularity, however long hashing
    took afterwards."""
    if not stats:
        return False
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats)
    return newest >= listed_at_ns - int(RACY_WINDOW_S * 1e9)


def listing_fingerprint(rels: Sequence[str], stats: Sequence[FileStat]) -> str:
    """sha256 of a listing: every file's path with its size, mtime_ns, inode and ctime_ns
    (what the stat cache trusts for one file, here for all of them at once), and repro's
    version. Any file added, removed, renamed, written or chmod'ed (ctime) changes it."""
    from repro import __version__

    h = hashlib.sha256(f"repro {__version__} listing {LISTING_VERSION} {len(rels)}\0".encode())
    h.update("\0".join(rels).encode("utf-8", "surrogateescape"))
    try:
        packed = b"q" + array("q", chain.from_iterable(stats)).tobytes()
    except OverflowError:  # an inode past 2**63: the numbers as text
        packed = b"r" + repr([tuple(st) for st in stats]).encode()
    h.update(b"\0\0" + packed)
    return h.hexdigest()


OnData = Callable[[int, str, bytes], None]
"""Called from a hashing thread with (index in `paths`, sha256, content) of a small file
just read: the secret scan looks at the same bytes instead of reading the file again."""


def hash_files(
    paths: list[Path],
    *,
    cache: StatCache | None = None,
    cache_root: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    stats: list[FileStat | None] | None = None,
    on_data: OnData | None = None,
) -> dict[Path, Digest]:
    """sha256 of every path, in parallel threads, skipping files the stat cache knows.

    The returned Digest carries the stat seen *before* reading, so a later write can tell
    whether the file changed since it was hashed. `stats` (aligned with `paths`) are stats
    taken when listing, so no file is stat'ed twice; the cache is read in one query.
    """
    known = cache.lookup_under(cache_root) if cache and cache_root else {}
    results: dict[Path, Digest] = {}
    todo: list[tuple[int, Path, FileStat]] = []
    absolute = all(p.is_absolute() for p in paths)
    for index, path in enumerate(paths):
        st = stats[index] if stats is not None else None
        if st is None:
            st = FileStat.of(path.stat())
        hit = known.get(str(path) if absolute else str(path.absolute())) if known else None
        if hit is not None and (hit.size, hit.mtime_ns, hit.inode, hit.ctime_ns) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_ctime_ns,
        ):
            results[path] = hit
            if progress:
                progress(st.st_size)
        else:
            todo.append((index, path, st))
    # Biggest first, so the pool's threads finish together.
    todo.sort(key=lambda item: item[2].st_size, reverse=True)
    n_workers = workers or min(8, (os.cpu_count() or 1))

    # A few long-lived threads, each with its own buffer, pulling from one queue: a pool's
    # per-task futures cost more than hashing a small file (measured: benchmarks/README.md).
    queue: SimpleQueue[tuple[int, Path, FileStat] | None] = SimpleQueue()
    for item in todo:
        queue.put(item)
    fresh: list[tuple[Path, Digest]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        buffer = bytearray(CHUNK)
        mine = []
        try:
            while (item := queue.get()) is not None:
                index, path, st = item
                data = read_small(path, st.st_size) if st.st_size <= CHUNK else None
                if data is not None:
                    sha, size = hashlib.sha256(data).hexdigest(), len(data)
                    if on_data is not None:
                        on_data(index, sha, data)
                else:
                    sha, size = sha256_file(path, buffer)
                if progress:
                    progress(size)
                mine.append((path, Digest(sha, size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)))
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)
        fresh.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(min(n_workers, len(todo)))]
    for thread in threads:
        queue.put(None)
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    now_ns = time.time_ns()
    for path, digest in fresh:
        results[path] = digest
    if cache is not None:
        cache.store(
            (str(path) if absolute else str(path.absolute()), d)
            for path, d in fresh
            if now_ns - max(d.mtime_ns, d.ctime_ns) > RACY_WINDOW_S * 1e9
        )
    return results


Inspect = Callable[[int, str, bytes], _T | None]
"""Called in the worker that read a small file with (its index, sha256, content); what it
returns (when not None) is handed back by index: the secret scan looks at the bytes the
hashing read instead of reading the file again."""

POOL_MIN_FILES = 4000
"""Below this many files to read, threads (a process pool's start-up would cost more)."""
_CHUNK_FILES = 512
_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Hashed(Generic[_T]):
    """`digest_files`' answer, aligned with the files it was given."""

    sha256: list[str]
    sizes: list[int]
    """The bytes read (the listed size for a file the stat cache knew)."""
    found: dict[int, _T]
    """What `inspect` returned, by index, where it was not None."""
    from_cache: int
    """How many files the stat cache answered for (not read)."""


_Job = tuple[str, Sequence[str], Sequence[FileStat], "Inspect[Any] | None", Sequence[int]]
"""(prefix, rels, stats, inspect, todo): what the workers need."""

# A process pool's job: set while the pool forks its workers, which inherit it (never
# pickled); under a lock, so that two captures in threads never fork with each other's.
_job: _Job | None = None
_fork_lock = threading.Lock()


def _digest_range(
    start: int, stop: int, job: _Job | None = None
) -> tuple[int, list[str], list[int], dict[int, Any]]:
    """sha256, size and inspection of the files todo[start:stop] (in a worker or a thread;
    a forked worker takes the job it inherited)."""
    job = job if job is not None else _job
    if job is None:
        raise RuntimeError("_digest_range outside digest_files")
    prefix, rels, stats, inspect, order = job
    shas, sizes, found = [], [], {}
    buffer: bytearray | None = None
    sha256 = hashlib.sha256
    for i in range(start, stop):
        index = order[i]
        path = prefix + rels[index]
        size = stats[index].st_size
        data = read_small(path, size) if size <= CHUNK else None
        if data is not None:
            sha = sha256(data).hexdigest()
            if inspect is not None and (seen := inspect(index, sha, data)) is not None:
                found[index] = seen
            size = len(data)
        else:
            if buffer is None:
                buffer = bytearray(CHUNK)
            sha, size = sha256_file(Path(path), buffer)
        shas.append(sha)
        sizes.append(size)
    return start, shas, sizes, found


def digest_files(
    prefix: str,
    rels: Sequence[str],
    stats: Sequence[FileStat],
    *,
    cache: StatCache | None = None,
    inspect: Inspect[_T] | None = None,
    progress: Callable[[int], None] | None = None,
    processes: bool | None = None,
) -> Hashed[_T]:
    """sha256 of every file `prefix + rel` (prefix: a folder ending in /), skipping files the
    stat cache knows, the others read once each (small ones whole, then `inspect`ed).

    `stats` are the stats taken when listing (aligned with `rels`): nothing is stat'ed here.
    The cache is read in one query and written in one transaction, as rows. Many files are
    read in two forked worker processes (`processes=None`: when there are at least
    POOL_MIN_FILES to read and two CPUs), each over chunks of files, returning compact
    results; a few in threads. `progress` hears the count of files done, in steps.
    """
    global _job
    n = len(rels)
    shas: list[str] = [""] * n
    sizes: list[int] = [0] * n
    key_prefix = cache_prefix(prefix)
    known = cache.rows_under(key_prefix) if cache is not None else {}
    todo: list[int] = []
    if known:
        get = known.get
        for index, rel in enumerate(rels):
            hit = get(key_prefix + rel)
            st = stats[index]
            if hit is not None and hit[1:5] == st:
                shas[index] = hit[5]
                sizes[index] = st.st_size
            else:
                todo.append(index)
        del known
    else:
        todo = list(range(n))
    from_cache = n - len(todo)
    if progress and from_cache:
        progress(from_cache)
    # Biggest first, so the workers finish together.
    todo.sort(key=lambda i: stats[i].st_size, reverse=True)
    found: dict[int, _T] = {}
    cpus = os.cpu_count() or 1
    use_pool = processes if processes is not None else (len(todo) >= POOL_MIN_FILES and cpus > 1)
    chunks = _chunks(todo, stats)
    job: _Job = (prefix, rels, stats, inspect, todo)
    try:
        if use_pool and chunks:
            # fork: the workers inherit the file list and `inspect` (nothing to pickle but
            # two ints per chunk there and the digests back).
            from concurrent.futures import ProcessPoolExecutor, as_completed

            workers = min(2, cpus)
            with _fork_lock, forking() as context:
                _job = job
                try:
                    pool = ProcessPoolExecutor(
                        workers, mp_context=context, initializer=quiet_worker
                    )
                    # The first submission forks the workers, which inherit `_job`.
                    futures = [pool.submit(_digest_range, a, b) for a, b in chunks]
                finally:
                    _job = None
            try:
                for future in as_completed(futures):
                    start, part_shas, part_sizes, part_found = result_of(future, "hashing files")
                    _merge(todo, start, part_shas, part_sizes, shas, sizes)
                    found.update(part_found)
                    if progress:
                        progress(len(part_shas))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        elif chunks:
            _threads(job, chunks, shas, sizes, found, progress)
    except FileNotFoundError as exc:  # deleted since it was listed (in a worker or here)
        raise FileChangedError(
            f"file vanished during capture: {exc.filename}", path=exc.filename
        ) from None
    if cache is not None and todo:
        now_ns = time.time_ns()
        racy = now_ns - int(RACY_WINDOW_S * 1e9)
        cache.store_rows(
            (key_prefix + rels[i], sizes[i], st.st_mtime_ns, st.st_ino, st.st_ctime_ns, shas[i])
            for i in todo
            if max((st := stats[i]).st_mtime_ns, st.st_ctime_ns) < racy
        )
    return Hashed(shas, sizes, found, from_cache)


def _chunks(todo: list[int], stats: Sequence[FileStat]) -> list[tuple[int, int]]:
    """todo[a:b] ranges of at most _CHUNK_FILES files and about _CHUNK_BYTES (a big file
    alone), so that the workers share big files as well as many small ones."""
    chunks, start, total = [], 0, 0
    for position, index in enumerate(todo):
        total += stats[index].st_size
        if total >= _CHUNK_BYTES or position + 1 - start >= _CHUNK_FILES:
            chunks.append((start, position + 1))
            start, total = position + 1, 0
    if start < len(todo):
        chunks.append((start, len(todo)))
    return chunks


def _merge(
    todo: Sequence[int],
    start: int,
    part_shas: list[str],
    part_sizes: list[int],
    shas: list[str],
    sizes: list[int],
) -> None:
    for offset, (sha, size) in enumerate(zip(part_shas, part_sizes, strict=True)):
        index = todo[start + offset]
        shas[index] = sha
        sizes[index] = size


def _threads(
    job: _Job,
    chunks: list[tuple[int, int]],
    shas: list[str],
    sizes: list[int],
    found: dict[int, Any],
    progress: Callable[[int], None] | None,
) -> None:
    """The chunks in a few threads (hashlib and reads release the GIL: big files overlap);
    the results merged here, in the calling thread, where a thread's error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    todo = job[4]
    with ThreadPoolExecutor(min(4, len(chunks))) as pool:
        for start, part_shas, part_sizes, part_found in pool.map(
            lambda chunk: _digest_range(chunk[0], chunk[1], job), chunks
        ):
            _merge(todo, start, part_shas, part_sizes, shas, sizes)
            found.update(part_found)
            if progress:
                progress(len(part_shas))
