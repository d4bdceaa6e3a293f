"""The HTML replay report: self-contained, escaped, and readable in a real browser (Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from repro.compare.verdict import Difference, OutputVerdict
from repro.report import navigation, write_html_report
from repro.report.replay import EnvironmentDifference, PointReplay, ReplayReport
from tests.conftest import require_service

RUN = "train"
HOSTILE_TITLE = 'Noise & "signal" <script>alert(1)</script>'
SHA_A = "a" * 64
SHA_B = "b" * 64


def _png(path: Path, block: tuple[int, int, int] | None) -> None:
    """A 64x48 grey gradient; `block` paints a 16x12 patch so two images differ there."""
    img = Image.new("RGB", (64, 48))
    img.putdata([(40 + 3 * x, 40 + 3 * x, 60 + 2 * y) for y in range(48) for x in range(64)])
    if block is not None:
        img.paste(block, (24, 18, 40, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def replay_files(tmp_path: Path) -> tuple[Path, Path]:
    """An unpacked capsule's expected results and a replayed project, as the pipeline leaves them."""
    capsule_root, project = tmp_path / "capsule", tmp_path / "project"
    expected = capsule_root / "data" / "results" / RUN / "seed-1"
    metrics = json.dumps({"metrics": {"auc": 0.91, "loss": 0.2}}, indent=2)
    for root in (expected, project):
        _write(root, "results/metrics.json", metrics)
    _write(expected, "results/scores.json", json.dumps({"metrics": {"auc": 0.91}}, indent=2))
    _write(project, "results/scores.json", json.dumps({"metrics": {"auc": 0.87}}, indent=2))
    _write(expected, "results/log.txt", "epoch 1 loss 0.5\nepoch 2 loss 0.3\ndone\n")
    _write(project, "results/log.txt", "epoch 1 loss 0.5\nepoch 2 loss 0.4\ndone\n")
    _write(expected, "results/table.csv", "a,b\n1,2\n")
    _write(project, "results/extra.txt", "new\n")
    _png(expected / "figures/loss.png", None)
    _png(project / "figures/loss.png", (0, 90, 200))
    (tmp_path / "secret.txt").write_text("do-not-embed-this-secret\n")
    return capsule_root, project


def _report() -> ReplayReport:
    ok = PointReplay(
        run=RUN,
        point={"seed": 1, "lr": 0.01},
        point_id="seed-1",
        command="python train.py --seed 1",
        status="ok",
        exit_code=0,
        duration_s=12.5,
        captured_duration_s=11.9,
        outputs=[
            OutputVerdict(
                path="results/metrics.json",
                verdict="identical",
                method="exact",
                detail="same bytes",
                expected_sha256=SHA_A,
                actual_sha256=SHA_A,
            ),
            OutputVerdict(
                path="results/scores.json",
                verdict="different",
                method="numeric",
                detail="1 of 1 values differ beyond rtol=1e-06; largest at $.metrics.auc",
                max_abs_deviation=0.04,
                max_rel_deviation=0.04396,
                differing_fraction=1.0,
                differences=[
                    Difference(
                        where="$.metrics.auc",
                        expected="0.91",
                        actual="0.87",
                        abs_deviation=0.04,
                        rel_deviation=0.04396,
                    )
                ],
                expected_sha256=SHA_A,
                actual_sha256=SHA_B,
            ),
            OutputVerdict(
                path="figures/loss.png",
                verdict="different",
                method="image",
                detail="192 of 3072 pixels differ (max channel difference 200)",
                max_abs_deviation=200.0,
                differing_fraction=0.0625,
                expected_sha256=SHA_A,
                actual_sha256=SHA_B,
            ),
            OutputVerdict(
                path="results/log.txt",
                verdict="different",
                method="text",
                detail="first difference at line 2",
                differences=[Difference(where="line 2")],
                expected_sha256=SHA_A,
                actual_sha256=SHA_B,
            ),
            OutputVerdict(
                path="results/table.csv",
                verdict="missing",
                method="exact",
                detail="expected but not produced",
                expected_sha256=SHA_A,
            ),
            OutputVerdict(
                path="results/extra.txt",
                verdict="not_verified",
                method="exact",
                detail="no expectation was recorded",
                actual_sha256=SHA_B,
            ),
            OutputVerdict(
                path="../secret.txt",
                verdict="different",
                method="text",
                detail="a hostile path that escapes its folder",
            ),
        ],
    )
    failed = PointReplay(
        run=RUN,
        point={"seed": 2, "lr": 0.01},
        point_id="seed-2",
        command="python train.py --seed 2",
        status="failed",
        exit_code=1,
        duration_s=0.8,
        stderr_tail=(
            "Traceback (most recent call last):\n"
            '  File "train.py", line 3, in <module>\n'
            "ValueError: seed 2 diverged, see https://example.org/help\n"
        ),
        outputs=[
            OutputVerdict(
                path="results/metrics.json",
                verdict="missing",
                method="exact",
                detail="expected but not produced",
            )
        ],
    )
    return ReplayReport(
        capsule="/data/study.repro",
        capsule_id="sha256:" + "c" * 64,
        title=HOSTILE_TITLE,
        signature="signed but untrusted (key 3f2a…)",
        target="local",
        reproduced=False,
        counts={"identical": 1, "different": 4, "missing": 2, "not_verified": 1},
        points=[ok, failed],
        environment_differences=[
            EnvironmentDifference(what="python", captured="3.11.4", replayed="3.11.9"),
            EnvironmentDifference(what="package numpy", captured="1.26.4", replayed="2.0.0"),
            EnvironmentDifference(what="gpu", captured="NVIDIA A100", replayed=None),
        ],
        warnings=["capsule is signed but untrusted: its author is not confirmed"],
        started="2024-05-01T10:00:00Z",
        duration_s=95.2,
    )


def test_report_is_self_contained_and_escaped(
    tmp_path: Path, replay_files: tuple[Path, Path]
) -> None:
    capsule_root, project = replay_files
    dest = tmp_path / "out" / "report.html"
    write_html_report(_report(), capsule_root, project, dest)
    page = dest.read_text(encoding="utf-8")

    for word in ("NOT REPRODUCED", "identical", "different", "missing", "not verified"):
        assert word in page
    assert "failed · exit 1" in page
    assert "ValueError: seed 2 diverged" in page
    assert "$.metrics.auc" in page
    assert "numpy" in page and "2.0.0" in page and "3.11.4" in page
    assert "signed but untrusted" in page
    assert "seed=1, lr=0.01" in page
    # expected, replayed and difference image of loss.png
    assert page.count("data:image/png;base64,") == 3
    # the unified diff of log.txt, coloured
    assert '<span class="del">-epoch 2 loss 0.3</span>' in page
    assert '<span class="add">+epoch 2 loss 0.4</span>' in page

    # escaped user text, no script but the page's own (allowed by its hash), nothing fetched
    assert page.count("<script") == 1 and f"<script>{navigation.SCRIPT}</script>" in page
    assert f"script-src '{navigation.SCRIPT_HASH}'" in page and "unsafe-eval" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'src="http' not in page
    assert re.findall(r'href="([^#][^"]*)"', page) == []  # links within the page only
    assert "url(" not in page and "@import" not in page
    # a manifest path escaping its folder is not read into the page
    assert "do-not-embed-this-secret" not in page
    assert "points outside its folder, so it was not read" in page

    # atomic: only the report is left, and rendering is deterministic
    assert [p.name for p in dest.parent.iterdir()] == ["report.html"]
    write_html_report(_report(), capsule_root, project, dest)
    assert dest.read_text(encoding="utf-8") == page


def test_large_image_is_described_not_embedded(
    tmp_path: Path, replay_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro.report import evidence

    monkeypatch.setattr(evidence, "IMAGE_LIMIT", 100)
    capsule_root, project = replay_files
    dest = tmp_path / "report.html"
    write_html_report(_report(), capsule_root, project, dest)
    page = dest.read_text(encoding="utf-8")
    assert "data:image/png;base64," not in page
    assert "not embedded" in page


def test_report_renders_in_chromium(tmp_path: Path, replay_files: tuple[Path, Path]) -> None:
    chromium = shutil.which("chromium")
    require_service(chromium is not None, "chromium")
    assert chromium is not None
    capsule_root, project = replay_files
    page = tmp_path / "report.html"
    write_html_report(_report(), capsule_root, project, page)
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file(), result.stderr[-2000:]

    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
    assert colours is not None and len(colours) > 50, "the page rendered blank"
    reddish = sum(n for n, (r, g, b) in colours if r > 170 and g < 90 and b < 90)
    greenish = sum(n for n, (r, g, b) in colours if g > r + 50 and g > b + 30)
    assert reddish > 100, "no red verdict or badge visible"
    assert greenish > 100, "no green badge visible"
