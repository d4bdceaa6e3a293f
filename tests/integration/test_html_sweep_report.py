"""The HTML report for a reader: reproduced figures as thumbnails, image differences
summarised, no green "ok" in a report that did not reproduce, Jupyter's cell numbers, and a
100-point sweep that stays usable (grid, filter, contents) at 1280 px and at phone width,
checked in headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from repro.compare.verdict import Difference, OutputVerdict
from repro.report import navigation, write_html_report
from repro.report.page import render_html
from repro.report.replay import PointReplay, ReplayReport
from tests.conftest import require_service
from tests.integration.test_html_report import RUN, _png, _report, replay_files

__all__ = ["replay_files"]  # the fixture, shared with test_html_report

PIXEL = Difference(
    where="pixel (x=24, y=18)", expected="(112, 112, 96)", actual="(0, 90, 200)", abs_deviation=200
)


def _with_figures(report: ReplayReport) -> ReplayReport:
    """The report of test_html_report, with a figure that reproduced and the pixel list the
    image comparator records under the one that did not."""
    ok = report.points[0]
    outputs = [
        o.model_copy(update={"differences": [PIXEL] * 20}) if o.path == "figures/loss.png" else o
        for o in ok.outputs
    ]
    outputs.append(
        OutputVerdict(
            path="figures/curve.png",
            verdict="identical",
            method="image",
            detail="same bytes",
            expected_sha256="a" * 64,
            actual_sha256="a" * 64,
        )
    )
    return report.model_copy(
        update={"points": [ok.model_copy(update={"outputs": outputs}), *report.points[1:]]}
    )


def test_reproduced_figures_show_and_image_differences_are_summarised(
    tmp_path: Path, replay_files: tuple[Path, Path]
) -> None:
    capsule_root, project = replay_files
    _png(project / "figures/curve.png", None)
    page = render_html(_with_figures(_report()), capsule_root, project)
    # the reproduced figure is shown, small, and enlarges on a click
    thumbs = re.findall(r'<div class="thumb">(.*?)</div>', page)
    assert len(thumbs) == 1 and "figures/curve.png" in thumbs[0]
    assert '<img class="zoom" alt="figures/curve.png" src="data:image/png;base64,' in thumbs[0]
    assert '<dialog id="zoom"' in page
    # the difference keeps its three pictures, and its numbers are summarised, not listed
    assert page.count("data:image/png;base64,") == 4
    assert "pixel (x=24, y=18)" not in page and "(0, 90, 200)" not in page
    summary = re.search(r'<dl class="meta pixels">(.*?)</dl>', page)
    assert summary is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", summary.group(1)).split())
    assert "192 of 3,072 (6.250%)" in text  # the 16x12 patch _png paints
    # red: the gradient's 40 + 3x against 0, largest at x = 39
    assert "largest channel difference 157" in text
    assert "x 24 to 39, y 18 to 29 (a box of 16 by 12 px)" in text


def test_no_green_ok_inside_a_report_that_did_not_reproduce(
    tmp_path: Path, replay_files: tuple[Path, Path]
) -> None:
    capsule_root, project = replay_files
    page = render_html(_report(), capsule_root, project)
    assert "NOT REPRODUCED" in page
    assert '<span class="badge good">ok</span>' not in page
    # the point that ran but whose outputs differ says so, in red
    head = re.search(
        r'<summary class="point-head"><h3>train</h3><code>seed=1, lr=0.01</code>'
        r'(<span class="badge [a-z]+">[^<]+</span>)',
        page,
    )
    assert head is not None and head.group(1) == '<span class="badge bad">not reproduced</span>'
    assert "exit 0 · ran 12.5 s" in page
    assert '<span class="chip good">' not in page.split("ran cleanly")[0].rsplit("<div", 1)[1]


def _sweep(n: int = 100) -> ReplayReport:
    """A sweep of `n` points: mostly reproduced, a few different, failed and unchecked."""
    points = []
    for i in range(n):
        status, verdict = "ok", "identical"
        if i % 17 == 5:
            verdict = "different"
        elif i % 23 == 7:
            status, verdict = "failed", "missing"
        elif i % 31 == 3:
            verdict = "not_verified"
        points.append(
            PointReplay(
                run=RUN,
                point={"seed": i, "lr": 0.001 * (1 + i % 3)},
                point_id=f"seed-{i}",
                command=f"python train.py --seed {i} --out results/seed-{i}/run-with-a-long-name",
                status=status,  # type: ignore[arg-type]
                exit_code=0 if status == "ok" else 2,
                duration_s=3.0 + i / 10,
                stderr_tail="Traceback: diverged\n" if status == "failed" else "",
                outputs=[
                    OutputVerdict(
                        path="figures/loss.png",
                        verdict=verdict,  # type: ignore[arg-type]
                        method="image",
                        detail=f"{verdict} (point {i})",
                    )
                ],
            )
        )
    counts: dict[str, int] = {}
    for p in points:
        counts[p.outputs[0].verdict] = counts.get(p.outputs[0].verdict, 0) + 1
    return ReplayReport(
        capsule="/data/sweep.repro",
        capsule_id="sha256:" + "d" * 64,
        title="A sweep of one hundred points over seeds and learning rates",
        signature="signed by the author (key 3f2a…)",
        target="slurm",
        reproduced=False,
        counts=counts,
        points=points,
        started="2026-12-01T10:00:00Z",
        duration_s=612.0,
    )


def _sweep_files(tmp_path: Path, report: ReplayReport) -> tuple[Path, Path]:
    capsule_root, project = tmp_path / "capsule", tmp_path / "project"
    for p in report.points:
        expected = capsule_root / "data" / "results" / RUN / p.point_id / "figures/loss.png"
        _png(expected, None)
        _png(project / "figures/loss.png", None)
    return capsule_root, project


def test_a_sweep_has_a_grid_a_filter_and_contents(tmp_path: Path) -> None:
    report = _sweep()
    capsule_root, project = _sweep_files(tmp_path, report)
    page = render_html(report, capsule_root, project)
    cells = re.findall(r'<a class="cell (\w+) \w+" href="#point-(\d+)" data-verdict="(\w+)"', page)
    assert [int(i) for _, i, _ in cells] == list(range(1, 101))
    verdicts = [navigation.point_verdict(p) for p in report.points]
    assert [v for _, _, v in cells] == verdicts
    assert {(t, v) for t, _, v in cells} == {
        ("good", "reproduced"),
        ("bad", "different"),
        ("bad", "failed"),
        ("warn", "not_verified"),
    }
    for v in set(verdicts):
        assert f'data-filter="{v}" aria-pressed="false">' in page
        assert f">{navigation.point_words(v)} {verdicts.count(v)}</button>" in page
    # every cell leads to a card; in a sweep this large only the cards to look at are open
    cards = re.findall(
        r'<details class="point" id="point-(\d+)" data-verdict="(\w+)"( open)?>', page
    )
    assert len(cards) == 100
    assert all(bool(is_open) == (v != "reproduced") for _, v, is_open in cards)
    toc = re.search(r'<nav class="toc"[^>]*>(.*?)</nav>', page)
    assert toc is not None and 'href="#sweep"' in toc.group(1) and 'href="#points"' in toc.group(1)
    assert page.count('<tr data-verdict="') == 100  # the list of points
    assert len(page) < 3_000_000  # 100 thumbnails of small figures: still a light page


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
)

# Run in the page after its own script: measures, uses the filter, and posts the result to
# the harness page around it, which writes it into the DOM that --dump-dom prints.
MEASURE = """(function () {
  var d = document, root = d.documentElement, grid = d.querySelector(".grid");
  var box = grid.getBoundingClientRect(), cell = grid.querySelector(".cell").getBoundingClientRect();
  var r = {scrollWidth: root.scrollWidth, innerWidth: window.innerWidth,
    gridWidth: box.width, gridHeight: box.height, cellWidth: cell.width,
    cells: grid.querySelectorAll(".cell").length};
  d.querySelector('button[data-filter="failed"]').click();
  r.cardsShownFailed = [].filter.call(d.querySelectorAll("details.point"),
    function (e) { return !e.hidden && e.offsetHeight > 0; }).length;
  d.querySelector('button[data-filter="all"]').click();
  r.cardsShownAll = [].filter.call(d.querySelectorAll("details.point"),
    function (e) { return !e.hidden && e.offsetHeight > 0; }).length;
  parent.postMessage(JSON.stringify(r), "*");
})();"""

# Headless Chromium's window is at least 500 px wide: the page is measured and shot in an
# iframe of the width wanted (its own viewport: media queries and innerWidth follow it).
HARNESS = """<!DOCTYPE html><html><head><style>body {{ margin: 0; }}
iframe {{ border: 0; display: block; }}</style></head><body>
<pre id="measured"></pre>
<script>addEventListener("message", function (e) {{
  document.getElementById("measured").textContent = e.data; }});</script>
<iframe src="{page}" width="{width}" height="{height}"></iframe></body></html>"""


def _harness(page: Path, width: int, height: int, measure: bool) -> Path:
    """A page holding `page` (with MEASURE added when `measure`, allowed by its hash beside
    the page's own script's) in an iframe `width` px wide."""
    text = page.read_text(encoding="utf-8")
    if measure:
        digest = base64.b64encode(hashlib.sha256(MEASURE.encode()).digest()).decode()
        csp = f"script-src '{navigation.SCRIPT_HASH}'"
        assert text.count(csp) == 1
        text = text.replace(csp, f"{csp} 'sha256-{digest}'")
        text = text.replace("</body>", f"<script>{MEASURE}</script></body>")
    inner = page.with_name(f"{page.stem}-{width}{'-m' if measure else ''}.html")
    inner.write_text(text, encoding="utf-8")
    outer = page.with_name(f"harness-{inner.name}")
    outer.write_text(HARNESS.format(page=inner.name, width=width, height=height))
    return outer


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    chromium = shutil.which("chromium")
    require_service(chromium is not None, "chromium")
    assert chromium is not None
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_a_100_point_sweep_in_chromium(tmp_path: Path, width: int) -> None:
    report = _sweep()
    capsule_root, project = _sweep_files(tmp_path, report)
    page = tmp_path / "sweep.html"
    write_html_report(report, capsule_root, project, page)
    window = max(width, 500)
    measured = _harness(page, width, 2400, measure=True)
    dom = _chromium(
        tmp_path,
        f"--window-size={window},2400",
        "--virtual-time-budget=5000",
        "--dump-dom",
        measured.as_uri(),
    )
    found = re.search(r'<pre id="measured">(.+?)</pre>', dom.stdout)
    assert found is not None, "the page's scripts did not run under its CSP"
    r = json.loads(found.group(1).replace("&quot;", '"'))
    assert r["innerWidth"] == width
    assert r["scrollWidth"] <= r["innerWidth"], f"horizontal overflow at {width} px: {r}"
    assert r["cells"] == 100 and r["gridHeight"] > 0 and r["cellWidth"] >= 28
    assert r["gridWidth"] <= width
    failed = sum(1 for p in report.points if p.status != "ok")
    assert r["cardsShownFailed"] == failed and r["cardsShownAll"] == 100

    full = tmp_path / f"window-{width}.png"
    shown = _harness(page, width, 1600, measure=False)
    _chromium(tmp_path, f"--screenshot={full}", f"--window-size={window},1600", shown.as_uri())
    shot = tmp_path / f"sweep-{width}.png"
    with Image.open(full) as img:
        img.crop((0, 0, width, 1600)).save(shot)
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
    # the grid's squares: green for the reproduced points, red for the others
    greenish = sum(n for n, (r_, g, b) in colours if g > r_ + 30 and g > b + 20)
    reddish = sum(
        n for n, (r_, g, b) in colours if r_ > 200 and g < 220 and b < 220 and r_ > g + 20
    )
    assert greenish > 2000 and reddish > 300, (greenish, reddish)
