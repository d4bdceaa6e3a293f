"""Worker processes for the per-file work of big studies: forked, so that they inherit
their job (file lists, callbacks) instead of having it pickled, and quiet on signals."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from repro.errors import WorkerDiedError

if TYPE_CHECKING:
    from concurrent.futures import Future
    from multiprocessing.context import ForkContext

_T = TypeVar("_T")


def quiet_worker() -> None:
    """A worker leaves Ctrl-C to the parent and ends quietly when terminated (not through
    the handlers it inherited: the CLI's turns SIGTERM into an exception and a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def forking() -> Iterator[ForkContext]:
    """The fork context, for making a pool (or a pool's first submissions) in the block.

    Python 3.12+ warns of fork in a process with threads (a progress bar's, the stat
    cache's): the workers only read files, hash and compress, and take none of their locks.
    """
    import multiprocessing  # here: not on the import path of every command

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process", DeprecationWarning)
        yield multiprocessing.get_context("fork")


def result_of(future: Future[_T], doing: str) -> _T:
    """The future's result; one line when its worker process was killed (a pool with a
    dead worker is broken: every pending task fails with it, none hangs)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerDiedError(worker_died(doing)) from None


def worker_died(doing: str) -> str:
    return f"a worker process died while {doing} (killed by a signal, most often for memory)"
