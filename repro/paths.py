"""Where repro keeps its caches, user state and temporary folders (platformdirs), overridable
for tests; and the sweep of temporary folders left by repro processes that died."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import platformdirs

STALE_AFTER_S = 30 * 60
"""A dead process's temporary folder is removed once it is this old: a repro in another PID
namespace sharing the temp folder (a container) looks dead from here, so give it time."""
_SCRATCH = re.compile(r"^repro-[a-z-]+\.p(\d+)\.")


def cache_dir() -> Path:
    """REPRO_CACHE_DIR, or the user cache directory."""
    override = os.environ.get("REPRO_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """REPRO_CONFIG_DIR, or the user config directory (keys, trust store)."""
    override = os.environ.get("REPRO_CONFIG_DIR")
    path = Path(override) if override else Path(platformdirs.user_config_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def scratch_prefix(what: str) -> str:
    """The name prefix of a temporary folder of this process (`repro-capture.p1234.`): the
    owner's pid in the name lets a later repro remove it once the owner is gone, even when
    the owner was killed (SIGKILL) before it could clean up."""
    return f"repro-{what}.p{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's process
        return True
    return True


def sweep_scratch(root: Path | None = None, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove repro's temporary folders in `root` (the temp folder) whose process is gone
    and that are older than `older_than_s`; only this user's, never through a link. Cheap:
    one listing of the folder. The removed paths."""
    folder = root or Path(tempfile.gettempdir())
    removed: list[Path] = []
    now, uid = time.time(), os.getuid()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = _SCRATCH.match(entry.name)
        if found is None or int(found.group(1)) == os.getpid():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (
            st.st_uid != uid
            or not entry.is_dir(follow_symlinks=False)
            or now - st.st_mtime < older_than_s
            or _alive(int(found.group(1)))
        ):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def data_dir() -> Path:
    """REPRO_DATA_DIR, or the user data directory (the replay history)."""
    override = os.environ.get("REPRO_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path


USED_DIR = "used"
"""Under the cache: one empty stamp file per cache entry, its mtime the entry's last use."""
_HELD: dict[Path, int] = {}


def mark_used(kind: str, name: str) -> None:
    """Stamp the cache entry `kind`/`name` as used now, and hold a shared lock on its stamp
    until this process ends: `repro cache prune` skips an entry whose stamp it cannot lock
    exclusively (in use by a capture, replay or shell still running)."""
    import fcntl

    stamp = cache_dir() / USED_DIR / kind / name
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        if stamp in _HELD:
            os.utime(stamp)
            return
        fd = os.open(stamp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.utime(fd)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return  # a stamp is a convenience: a read-only cache still works without one
    _HELD[stamp] = fd


def state_dir() -> Path:
    """REPRO_STATE_DIR, or the user state directory (records of detached replays)."""
    override = os.environ.get("REPRO_STATE_DIR")
    path = Path(override) if override else Path(platformdirs.user_state_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path
