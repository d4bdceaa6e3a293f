"""Which files a capsule holds: git-aware listing, ignores, symlinks, odd names, hashing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from repro import hashing
from repro.capture.files import list_project
from repro.capture.source import source_state, strip_credentials
from repro.errors import ProjectFileError, UnsafeSymlinkError
from repro.hashing import StatCache, hash_files
from tests.conftest import git


def names(
    project: Path, data: list[str] | None = None, exclude: set[str] | None = None
) -> list[str]:
    listing = list_project(
        project, data_paths=data or [], extra_ignores=[], exclude=exclude or set()
    )
    return [f.rel for f in listing.files]


def test_git_work_tree_lists_tracked_and_untracked_not_ignored(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("secret-build/\n*.log\nbigdata/\n")
    (tmp_path / "tracked.py").write_text("x")
    (tmp_path / "untracked.py").write_text("y")
    (tmp_path / "debug.log").write_text("ignored")
    (tmp_path / "secret-build").mkdir()
    (tmp_path / "secret-build" / "out.o").write_text("ignored")
    (tmp_path / "bigdata").mkdir()
    (tmp_path / "bigdata" / "table.csv").write_text("1,2\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"\0")
    git(tmp_path, "add", "tracked.py", ".gitignore")
    git(tmp_path, "commit", "-qm", "init")
    assert names(tmp_path) == [".gitignore", "tracked.py", "untracked.py"]
    # declared data is embedded even when git ignores it
    assert "bigdata/table.csv" in names(tmp_path, data=["bigdata"])


def test_outside_git_reproignore_and_builtin_ignores_apply(tmp_path: Path) -> None:
    (tmp_path / ".reproignore").write_text("scratch/\n*.tmp\n")
    for rel in ["a.py", "scratch/x.txt", "b.tmp", ".venv/bin/python", ".git/config", "sub/c.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert names(tmp_path) == [".reproignore", "a.py", "sub/c.py"]


def test_outside_git_a_data_folder_is_listed_once_and_through_a_linked_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "sub" / "t.csv").write_text("1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("2\n")
    (tmp_path / "link").symlink_to("real")
    # The project's walk does not follow link/: a data path through it is walked itself.
    listed = names(tmp_path, data=["data", "link/sub", "./data/"])
    assert listed == ["data/d.csv", "link", "link/sub/t.csv", "real/sub/t.csv"]  # as before


def test_excluded_paths_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("a")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "out.json").write_text("{}")
    listing = list_project(tmp_path, data_paths=[], extra_ignores=[], exclude={"results/out.json"})
    assert [f.rel for f in listing.files] == ["a.py"]
    assert listing.excluded == ["results/out.json (declared output or remote data)"]


def test_symlink_inside_is_kept_and_outside_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.csv").write_text("1")
    (project / "alias.csv").symlink_to("data/x.csv")
    (project / "datadir").symlink_to("data")
    files = {
        f.rel: f
        for f in list_project(project, data_paths=[], extra_ignores=[], exclude=set()).files
    }
    assert files["alias.csv"].is_link and files["alias.csv"].link_target == "data/x.csv"
    assert files["datadir"].link_target == "data"
    (tmp_path / "outside.txt").write_text("secret")
    (project / "leak.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UnsafeSymlinkError, match=r"leak\.txt"):
        list_project(project, data_paths=[], extra_ignores=[], exclude=set())


def test_symlink_to_a_left_out_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".reproignore").write_text("private.txt\n")
    (tmp_path / "private.txt").write_text("x")
    (tmp_path / "alias.txt").symlink_to("private.txt")
    with pytest.raises(UnsafeSymlinkError, match="leaves out"):
        list_project(tmp_path, data_paths=[], extra_ignores=[], exclude=set())


def test_non_utf8_file_name_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x")
    # A Latin-1 name, as copied from an old machine: not decodable as UTF-8.
    Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.csv")).write_text("x")
    with pytest.raises(ProjectFileError, match=r"not valid UTF-8: .*caf\\xe9\.csv") as info:
        list_project(tmp_path, data_paths=[], extra_ignores=[], exclude=set())
    assert "rename" in info.value.hint


def test_missing_data_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectFileError, match="data path not found: nothere"):
        list_project(tmp_path, data_paths=["nothere"], extra_ignores=[], exclude=set())


def test_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ProjectFileError, match="not a regular file: pipe"):
        list_project(tmp_path, data_paths=[], extra_ignores=[], exclude=set())


# --- hashing -----------------------------------------------------------------------------


def test_hashes_match_hashlib_for_mixed_sizes(tmp_path: Path) -> None:
    paths = []
    for i, size in enumerate([0, 1, 4095, 1 << 20, (1 << 20) + 7, 3_000_000]):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(size))
        paths.append(p)
    digests = hash_files(paths, workers=2)
    for p in paths:
        assert digests[p].sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
        assert digests[p].size == p.stat().st_size


def test_stat_cache_skips_unchanged_files_and_rehashes_changed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for i in range(5):
        p = tmp_path / "proj" / f"f{i}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(os.urandom(1000))
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))  # old enough to be cached
        files.append(p)
    # Files written just now are "racily clean" and not cached; pretend time has passed.
    monkeypatch.setattr(hashing, "RACY_WINDOW_S", -1e12)
    cache = StatCache(tmp_path / "hashes.sqlite")
    reads: list[Path] = []
    real = hashing.sha256_file

    def counting(path: Path, buffer: bytearray | None = None) -> tuple[str, int]:
        reads.append(path)
        return real(path, buffer)

    real_small = hashing.read_small

    def counting_small(path: Path | str, size: int) -> bytes | None:
        reads.append(Path(path))
        return real_small(path, size)

    monkeypatch.setattr(hashing, "sha256_file", counting)
    monkeypatch.setattr(hashing, "read_small", counting_small)
    first = hash_files(files, cache=cache, cache_root=tmp_path / "proj")
    assert len(reads) == 5
    reads.clear()
    second = hash_files(files, cache=cache, cache_root=tmp_path / "proj")
    assert reads == [] and second == first
    files[2].write_bytes(os.urandom(1000))  # same size, new content and mtime
    third = hash_files(files, cache=cache, cache_root=tmp_path / "proj")
    assert reads == [files[2]]
    assert third[files[2]].sha256 == hashlib.sha256(files[2].read_bytes()).hexdigest()
    # Rewritten in place with its old size and mtime restored: only ctime tells.
    reads.clear()
    with files[3].open("r+b") as fh:
        fh.write(b"tampered")
    os.utime(files[3], ns=(1_000_000_000, 1_000_000_000))
    fourth = hash_files(files, cache=cache, cache_root=tmp_path / "proj")
    assert reads == [files[3]]
    assert fourth[files[3]].sha256 == hashlib.sha256(files[3].read_bytes()).hexdigest()


def test_recently_modified_files_are_not_cached(tmp_path: Path) -> None:
    p = tmp_path / "fresh.txt"
    p.write_text("new")
    cache = StatCache(tmp_path / "hashes.sqlite")
    hash_files([p], cache=cache, cache_root=tmp_path)
    assert cache.lookup_under(tmp_path) == {}


# --- source state ------------------------------------------------------------------------


def test_git_source_state_records_commit_branch_dirty_and_clean_remote(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", "https://user:ghp_SECRET@github.com/lab/study.git")
    (tmp_path / "a.py").write_text("1")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "c")
    state = source_state(tmp_path)
    assert state.kind == "git" and state.branch == "main" and not state.dirty
    assert state.commit == git(tmp_path, "rev-parse", "HEAD")
    assert state.remote == "https://github.com/lab/study.git"
    (tmp_path / "a.py").write_text("2")
    dirty = source_state(tmp_path)
    assert dirty.dirty and dirty.diff_sha256 is not None


def test_strip_credentials_keeps_ssh_remotes() -> None:
    assert strip_credentials("git@github.com:lab/x.git") == "git@github.com:lab/x.git"
    assert strip_credentials("https://tok@host/x") == "https://host/x"


@pytest.mark.parametrize(
    ("remote", "recorded"),
    [
        ("https://user:ghp_SECRET@github.com/lab/x.git", "https://github.com/lab/x.git"),
        ("https://oauth2:glpat-abc@gitlab.com/lab/x.git", "https://gitlab.com/lab/x.git"),
        ("https://tok@host/x", "https://host/x"),
        (
            "https://gitlab.com/lab/x.git?private_token=abc123&ref=main",
            "https://gitlab.com/lab/x.git?ref=main",
        ),
        ("https://host/x.git?access_token=abc123", "https://host/x.git"),
        ("https://u:p@host/x.git?sig=abc&X-Amz-Credential=k", "https://host/x.git"),
        ("me:hunter2@host.org:lab/x.git", "me@host.org:lab/x.git"),
        ("git@github.com:lab/x.git", "git@github.com:lab/x.git"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("ssh://git:hunter2@host/x.git", "ssh://host/x.git"),
        ("/srv/git/x.git", "/srv/git/x.git"),
    ],
)
def test_recorded_remotes_lose_credentials_in_every_form(remote: str, recorded: str) -> None:
    assert strip_credentials(remote) == recorded


def test_a_remote_with_a_token_in_the_query_or_the_scp_form_is_recorded_clean(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", "me:hunter2x@host.org:lab/study.git")
    assert source_state(tmp_path).remote == "me@host.org:lab/study.git"
    git(tmp_path, "remote", "set-url", "origin", "https://host.org/s.git?private_token=tok123")
    assert source_state(tmp_path).remote == "https://host.org/s.git"
