"""The record of a built environment's files, and the check before a cached one is reused
(issue 16, defect 2): planted, edited and removed files are found; stray bytecode is removed."""

from __future__ import annotations

import os
from pathlib import Path

from repro.env.file_record import check_tree, record_tree


def _tree(root: Path) -> Path:
    pkg = root / "lib" / "python3.11" / "site-packages" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"compiled")
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to("/usr/bin/python3")
    (root / "lib64").symlink_to("lib")
    return pkg


def test_an_untouched_tree_matches_its_record(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    _tree(root)
    record_tree(root, tmp_path / "venv.files.json")
    assert check_tree(root, tmp_path / "venv.files.json") is None


def test_a_planted_pth_is_found(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    pkg = _tree(root)
    record_tree(root, tmp_path / "r.json")
    (pkg.parent / "zz_evil.pth").write_text("import os; os.system('id')\n")
    mismatch = check_tree(root, tmp_path / "r.json")
    assert mismatch is not None
    assert mismatch.added == ("lib/python3.11/site-packages/zz_evil.pth",)
    assert "zz_evil.pth" in mismatch.describe()


def test_an_edit_with_its_mtime_set_back_is_found(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    pkg = _tree(root)
    record_tree(root, tmp_path / "r.json")
    st = (pkg / "__init__.py").stat()
    (pkg / "__init__.py").write_text("VALUE = 2\n")  # same size
    os.utime(pkg / "__init__.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    mismatch = check_tree(root, tmp_path / "r.json")
    assert mismatch is not None
    assert mismatch.changed == ("lib/python3.11/site-packages/pkg/__init__.py",)


def test_a_touched_but_unchanged_file_is_read_again_and_accepted(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    pkg = _tree(root)
    record_tree(root, tmp_path / "r.json")
    (pkg / "__init__.py").write_text("VALUE = 1\n")  # same bytes, new mtime and ctime
    assert check_tree(root, tmp_path / "r.json") is None


def test_stray_bytecode_is_removed_not_trusted(tmp_path: Path) -> None:
    # A .pyc whose header matches the source's mtime and size runs instead of the source:
    # bytecode the record does not know is deleted, and Python compiles the checked source.
    root = tmp_path / "venv"
    pkg = _tree(root)
    record_tree(root, tmp_path / "r.json")
    planted = pkg / "__pycache__" / "other.cpython-311.pyc"
    planted.write_bytes(b"planted")
    recorded = pkg / "__pycache__" / "__init__.cpython-311.pyc"
    recorded.write_bytes(b"replaced")
    assert check_tree(root, tmp_path / "r.json") is None
    assert not planted.exists() and not recorded.exists()


def test_removed_files_links_and_a_missing_record_are_mismatches(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    pkg = _tree(root)
    record_tree(root, tmp_path / "r.json")
    (pkg / "__init__.py").unlink()
    (root / "bin" / "python").unlink()
    (root / "bin" / "python").symlink_to("/tmp/evil-python")
    mismatch = check_tree(root, tmp_path / "r.json")
    assert mismatch is not None
    assert mismatch.removed == ("lib/python3.11/site-packages/pkg/__init__.py",)
    assert mismatch.changed == ("bin/python",)
    assert check_tree(root, tmp_path / "missing.json") is not None
    (tmp_path / "bad.json").write_text("{not json")
    assert check_tree(root, tmp_path / "bad.json") is not None
