"""The secret scanner itself: chunked scanning finds tokens across chunk boundaries, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.capture import secret_scan as secrets
from repro.capture.secret_scan import SecretScanner

AWS = "AKIA" + "ABCDEFGHIJKLMNOP"
GITLAB = "glpat-" + "abcdefghij0123456789"


def test_tokens_across_chunk_boundaries_are_found_once_with_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "SCAN_CHUNK", 1000)
    monkeypatch.setattr(secrets, "OVERLAP", 200)
    lines = ["pad"] * 248 + [f"key={AWS}"] + ["row"] * 600 + [f"token {GITLAB}", "end"]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    text = path.read_bytes()
    assert text.index(AWS.encode()) < 1000 < text.index(AWS.encode()) + len(AWS)  # straddles
    hits = SecretScanner(environ={}).scan_file(path, "data.csv")
    assert [(h.line, h.kind) for h in hits] == [(249, "AWS access key"), (850, "GitLab token")]
    assert all(AWS not in h.masked and GITLAB not in h.masked for h in hits)


def test_binary_files_are_not_scanned_and_values_of_secret_variables_are(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\0\1" + AWS.encode())
    scanner = SecretScanner(environ={"MY_SERVICE_TOKEN": "tok-1234567890", "HOME": "/root/home"})
    assert scanner.scan_file(binary, "blob.bin") == []
    text = tmp_path / "log.txt"
    text.write_text("home is /root/home\nsent tok-1234567890\n")
    (hit,) = scanner.scan_file(text, "log.txt")
    assert hit.line == 2 and hit.kind == "value of a secret environment variable"
