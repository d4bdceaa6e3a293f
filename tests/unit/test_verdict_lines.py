"""The replay's verdicts at a terminal's width (repro.report.verdict_lines): one line per
output, nothing wider than the terminal, no word cut, absent values in words."""

from __future__ import annotations

import pytest

from repro.compare.verdict import OutputVerdict
from repro.report.replay import EnvironmentDifference, PointReplay, ReplayReport
from repro.report.verdict_lines import replay_lines, shorten_middle, wrap

FINGERPRINT = "SHA256:0a1b 2c3d 4e5f 6a7b 8c9d 0e1f 2a3b 4c5d"


def verdict(path: str, v: str, detail: str) -> OutputVerdict:
    return OutputVerdict(path=path, verdict=v, method="exact", detail=detail)  # type: ignore[arg-type]


def report(points: list[PointReplay], **kw: object) -> ReplayReport:
    return ReplayReport(
        capsule="c.tgz",
        capsule_id="0" * 64,
        title="Tiny study",
        signature="unsigned",
        target="docker",
        reproduced=False,
        counts={},
        points=points,
        started="2024-01-01T00:00:00Z",
        duration_s=1.0,
        **kw,  # type: ignore[arg-type]
    )


def text_of(lines: list[list[tuple[str, str]]]) -> list[str]:
    return ["".join(piece for piece, _ in line) for line in lines]


POINTS = [
    PointReplay(
        run="train",
        point={"seed": 3},
        point_id="seed=3",
        command="python train.py 3",
        status="ok",
        exit_code=0,
        duration_s=1.0,
        outputs=[
            verdict("results/metrics.json", "identical", "byte-identical (23 bytes)"),
            verdict(
                "results/figure.png",
                "different",
                "1.2% of pixels differ (max channel deviation 255); sha256 8af2a3ef05eb… -> "
                "36180c9992a6…; first difference at pixel (12, 40)",
            ),
            verdict("results/" + "very-long-folder-name/" * 5 + "table.csv", "missing", "gone"),
        ],
    ),
    PointReplay(
        run="train",
        point={"seed": 4},
        point_id="seed=4",
        command="python train.py 4",
        status="failed",
        exit_code=1,
        duration_s=1.0,
        stderr_tail="".join(f"line {i}\n" for i in range(30))
        + "  File \x1b[31m'x.py'\x1b[0m, in <module>\n"
        + "ValueError: "
        + "a rather long explanation " * 6
        + "\n",
        outputs=[verdict("results/metrics.json", "missing", "not produced by the replay")],
    ),
]


@pytest.mark.parametrize("width", [50, 64, 80, 120])
def test_every_line_fits_and_each_verdict_is_on_its_path_line(width: int) -> None:
    lines = text_of(replay_lines(report(POINTS), width))
    assert max(len(line) for line in lines) < width
    for v in [*POINTS[0].outputs, *POINTS[1].outputs]:
        word = v.verdict.replace("_", " ")
        with_verdict = [
            ln for ln in lines if ln.lstrip().startswith(("✓", "✗")) and f"  {word}" in ln
        ]
        end = v.path[-10:]
        assert any(end in ln for ln in with_verdict), (v.path, lines)


def test_the_layout_at_80_columns() -> None:
    lines = text_of(replay_lines(report(POINTS), 80))
    assert lines[:3] == ["Tiny study", "replay on docker (isolation: none)", "train [seed=3]"]
    assert "  ✓ results/metrics.json  identical: byte-identical (23 bytes)" in lines
    assert "  ✗ results/figure.png  different" in lines  # its detail wrapped below it
    assert "train [seed=4]  run failed (exit 1)" in lines
    # The last 15 lines of stderr, controls made visible, long lines folded at spaces.
    start = lines.index("    stderr (last 15 line(s)):")
    tail = lines[start + 1 :]
    assert tail[0] == "      line 17"
    assert "        File \\x1b[31m'x.py'\\x1b[0m, in <module>" in tail
    assert all("\x1b" not in ln for ln in lines)
    at = next(i for i, ln in enumerate(lines) if "table.csv" in ln)
    assert "…" in lines[at] and lines[at].endswith("/table.csv  missing")
    assert lines[at + 1] == "      gone"  # a shortened path leaves no room: the detail below


def test_ascii_marks_when_the_terminal_is_not_utf8() -> None:
    lines = text_of(replay_lines(report(POINTS[:1]), 80, unicode=False))
    assert "  + results/metrics.json  identical: byte-identical (23 bytes)" in lines
    assert "  x results/figure.png  different" in lines


def test_absent_environment_values_are_words_not_none() -> None:
    diffs = [
        EnvironmentDifference(what="gpus", captured=None, replayed="A100"),
        EnvironmentDifference(what="package numpy", captured="1.26.4", replayed=None),
        EnvironmentDifference(what="package extra", captured=None, replayed="1.0"),
    ]
    lines = text_of(replay_lines(report([], environment_differences=diffs), 80))
    assert "env   gpus: (none) -> A100" in lines
    assert "env   package numpy: 1.26.4 -> (not installed)" in lines
    assert "env   package extra: (not in the lock) -> 1.0" in lines
    assert not any("None" in ln for ln in lines)


def test_a_fingerprint_is_never_cut() -> None:
    text = "signed by a trusted key: Jane Doe, Institute of Reproducibility (" + FINGERPRINT + ")"
    for width in range(50, 100):  # (narrower than the fingerprint: it must be folded)
        lines = wrap(text, width)
        assert any(FINGERPRINT in ln for ln in lines), (width, lines)
        assert all(len(ln) <= width for ln in lines)


def test_shorten_middle_keeps_both_ends() -> None:
    assert shorten_middle("abc", 10) == "abc"
    short = shorten_middle("results/" + "x" * 50 + "/final.png", 30)
    assert len(short) == 30 and short.startswith("results/") and short.endswith("final.png")


def _sweep(n: int, bad: set[int]) -> list[PointReplay]:
    return [
        PointReplay(
            run="tiny",
            point={"i": i},
            point_id=f"i={i}",
            command=f"echo {i}",
            status="failed" if i in bad else "ok",
            exit_code=1 if i in bad else 0,
            duration_s=0.01,
            outputs=[
                verdict(f"out/{i}.txt", "missing" if i in bad else "identical", "byte-identical")
            ],
        )
        for i in range(n)
    ]


def test_a_large_sweep_folds_the_points_that_reproduced_and_shows_the_others() -> None:
    shown = text_of(replay_lines(report(_sweep(1000, {7, 500})), 80))
    assert len(shown) < 20, shown  # not 2,000 lines
    assert "tiny  ✓ 998 of 1000 points reproduced (998 identical)" in shown
    assert (
        "tiny [i=7]  run failed (exit 1)" in shown and "tiny [i=500]  run failed (exit 1)" in shown
    )
    assert not any("out/3.txt" in line for line in shown)
    everything = text_of(replay_lines(report(_sweep(1000, set())), 80))
    assert "tiny  ✓ every point reproduced (1000 identical)" in everything
    # up to FOLD_POINTS points, each point is shown as before
    small = text_of(replay_lines(report(_sweep(20, set())), 80))
    assert "tiny [i=19]" in small and "  ✓ out/19.txt  identical: byte-identical" in small
