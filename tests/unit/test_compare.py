"""compare_output: every verdict of every method and format, on real small files."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from repro.compare import compare_output, difference_image
from repro.compare.verdict import OutputVerdict
from repro.config.models import CompareRule, Normalization


def write(directory: Path, name: str, data: bytes | str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_bytes(data.encode())
    else:
        path.write_bytes(data)
    return path


def check(
    tmp_path: Path, name: str, expected: bytes | str, actual: bytes | str, **rule: Any
) -> OutputVerdict:
    """Write both sides as `name` under expected/ and actual/ and compare them."""
    verdict = compare_output(
        name,
        write(tmp_path / "expected", name, expected),
        write(tmp_path / "actual", name, actual),
        CompareRule(**rule),
    )
    # Every verdict must serialise (inf deviations included) for the replay report.
    json.loads(verdict.model_dump_json())
    return verdict


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2)


def npy(array: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(array), allow_pickle=False)
    return out.getvalue()


def npz(**arrays: Any) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def picture(
    width: int = 10,
    height: int = 10,
    mode: str = "RGB",
    changes: dict[tuple[int, int], Any] | None = None,
) -> Image.Image:
    """A deterministic gradient, with some pixels overwritten."""
    image = Image.new(mode, (width, height))
    for y in range(height):
        for x in range(width):
            value = (x * 20 + y * 5) % 256
            if mode == "RGB":
                image.putpixel((x, y), (value, 255 - value, (x * y) % 256))
            elif mode == "RGBA":
                image.putpixel((x, y), (value, 255 - value, (x * y) % 256, 255))
            else:
                image.putpixel((x, y), value)
    for xy, value in (changes or {}).items():
        image.putpixel(xy, value)
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


# --- not_verified, missing, identical --------------------------------------------------


def test_no_expectation_is_not_verified_with_the_actual_hash(tmp_path: Path) -> None:
    actual = write(tmp_path, "out.txt", "hello\n")
    verdict = compare_output("out.txt", None, actual, CompareRule())
    assert verdict.verdict == "not_verified"
    assert "no expected value was recorded" in verdict.detail
    assert verdict.actual_sha256 == sha("hello\n")
    assert verdict.expected_sha256 is None


def test_no_expectation_and_no_output_is_not_verified(tmp_path: Path) -> None:
    verdict = compare_output("out.txt", None, None, CompareRule(method="text"))
    assert verdict.verdict == "not_verified"
    assert verdict.method == "text"
    assert verdict.actual_sha256 is None


def test_expected_copy_absent_from_disk_is_not_verified(tmp_path: Path) -> None:
    actual = write(tmp_path, "out.txt", "x")
    verdict = compare_output("out.txt", tmp_path / "nowhere", actual, CompareRule())
    assert verdict.verdict == "not_verified"
    assert "not in the capsule" in verdict.detail


@pytest.mark.parametrize("method", ["exact", "text", "numeric", "image"])
def test_missing_actual_is_missing_whatever_the_method(tmp_path: Path, method: str) -> None:
    expected = write(tmp_path, "out.json", "{}")
    verdict = compare_output("out.json", expected, None, CompareRule(method=method))  # type: ignore[arg-type]
    assert verdict.verdict == "missing"
    assert verdict.method == method
    assert verdict.detail == "not produced by the replay"
    assert verdict.expected_sha256 == sha("{}")
    assert verdict.actual_sha256 is None


def test_actual_path_that_does_not_exist_is_missing(tmp_path: Path) -> None:
    expected = write(tmp_path, "out.txt", "x")
    verdict = compare_output("out.txt", expected, tmp_path / "absent.txt", CompareRule())
    assert verdict.verdict == "missing"


def test_actual_directory_is_missing(tmp_path: Path) -> None:
    expected = write(tmp_path, "out.txt", "x")
    (tmp_path / "dir").mkdir()
    verdict = compare_output("out.txt", expected, tmp_path / "dir", CompareRule())
    assert verdict.verdict == "missing"
    assert "not as a regular file" in verdict.detail


@pytest.mark.parametrize(
    ("name", "data", "rule"),
    [
        ("a.txt", "same\n", {}),
        ("a.txt", "same\r\n", {"method": "text"}),
        ("a.json", '{"x": 1.5}', {"rtol": 1e-6}),
        # Unparseable for its method, but byte-identical: identical comes first.
        ("a.json", "{not json", {"rtol": 1e-6}),
        ("a.csv", "a,b\n1\n", {"rtol": 1e-6}),
        ("a.npy", b"\x93NUMPY garbage", {"rtol": 1e-6}),
        ("a.png", b"not a png at all", {"pixel_tolerance": 0.5}),
        ("a.bin", b"", {}),
    ],
)
def test_identical_bytes_are_identical_whatever_the_method(
    tmp_path: Path, name: str, data: bytes | str, rule: dict[str, Any]
) -> None:
    verdict = check(tmp_path, name, data, data, **rule)
    assert verdict.verdict == "identical"
    assert verdict.detail.startswith("byte-identical")
    assert verdict.expected_sha256 == verdict.actual_sha256 == sha(data)
    assert verdict.differences == []


def test_the_same_inputs_give_the_same_verdict(tmp_path: Path) -> None:
    first = check(tmp_path, "r.json", dumps({"a": [1, 2]}), dumps({"a": [1, 3]}), rtol=0.1)
    second = check(tmp_path, "r.json", dumps({"a": [1, 2]}), dumps({"a": [1, 3]}), rtol=0.1)
    assert first == second


# --- exact --------------------------------------------------------------------------------


def test_exact_text_difference_names_the_first_differing_line(tmp_path: Path) -> None:
    verdict = check(tmp_path, "log.txt", "one\ntwo\nthree\n", "one\ntwo\nTHREE\n")
    assert verdict.verdict == "different"
    assert verdict.method == "exact"
    assert "first difference at line 3" in verdict.detail
    assert "14 bytes each" in verdict.detail
    assert sha("one\ntwo\nthree\n")[:12] in verdict.detail
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == (
        "line 3",
        "three",
        "THREE",
    )


def test_exact_appended_line_shows_nothing_on_the_shorter_side(tmp_path: Path) -> None:
    verdict = check(tmp_path, "log.txt", "a\nb\n", "a\nb\nc\n")
    assert verdict.verdict == "different"
    assert "4 -> 6 bytes" in verdict.detail
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == ("line 3", None, "c")


def test_exact_does_not_normalise_line_endings(tmp_path: Path) -> None:
    verdict = check(tmp_path, "log.txt", "a\r\nb\r\n", "a\nb\n")
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == ("line 1", "a\\r", "a")


def test_exact_long_line_is_shown_around_the_difference(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "one-line.txt",
        "x" * 10_000 + "A" + "y" * 10_000,
        "x" * 10_000 + "B" + "y" * 10_000,
    )
    (difference,) = verdict.differences
    assert difference.where == "line 1"
    assert difference.expected is not None and difference.actual is not None
    assert difference.expected.startswith("…x") and "xA" in difference.expected
    assert "xB" in difference.actual
    assert len(difference.expected) < 300


def test_exact_on_5_mb_binary_differing_in_the_last_byte(tmp_path: Path) -> None:
    size = 5 * 1024 * 1024
    blob = bytes(range(256)) * (size // 256)
    changed = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    verdict = check(tmp_path, "model.bin", blob, changed)
    assert verdict.verdict == "different"
    assert f"first difference at byte {size - 1}" in verdict.detail
    assert f"{size:,} bytes each" in verdict.detail
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == (
        f"byte {size - 1}",
        "0xff",
        "0x00",
    )
    assert verdict.expected_sha256 == sha(blob)
    assert verdict.actual_sha256 == sha(changed)


def test_exact_on_5_mb_text_differing_in_the_last_byte(tmp_path: Path) -> None:
    line = "0123456789" * 10 + "\n"
    text = line * (5 * 1024 * 1024 // len(line))
    verdict = check(tmp_path, "big.txt", text, text[:-2] + "X\n")
    assert verdict.verdict == "different"
    lines = text.count("\n")
    assert f"first difference at line {lines}" in verdict.detail
    assert verdict.differences[0].actual is not None
    assert verdict.differences[0].actual.endswith("78X")


def test_exact_difference_after_the_first_chunk_counts_lines_across_chunks(tmp_path: Path) -> None:
    lines = [f"line {i}" for i in range(300_000)]
    changed = list(lines)
    changed[250_000] = "changed"
    verdict = check(tmp_path, "many.txt", "\n".join(lines), "\n".join(changed))
    assert verdict.differences[0].where == "line 250001"
    assert verdict.differences[0].expected == "line 250000"


def test_exact_truncated_file_differs_at_the_end(tmp_path: Path) -> None:
    verdict = check(tmp_path, "x.bin", b"\x00\x01\x02\x03", b"\x00\x01")
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == ("byte 2", "0x02", None)


# --- text ---------------------------------------------------------------------------------


def test_text_crlf_and_lf_are_identical(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.txt", "a\r\nb\r\n", "a\nb\n", method="text")
    assert verdict.verdict == "identical"
    assert "normalising line endings" in verdict.detail
    assert verdict.expected_sha256 != verdict.actual_sha256


def test_text_old_mac_line_endings_are_identical(tmp_path: Path) -> None:
    assert check(tmp_path, "t.txt", "a\rb\r", "a\nb\n", method="text").verdict == "identical"


TIMESTAMP = Normalization(pattern=r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", replacement="<time>")


def test_text_normalised_timestamp_is_identical(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "run.log",
        "started 2024-01-02T03:04:05\nresult 42\n",
        "started 2025-06-07T08:09:10\nresult 42\n",
        normalize=[TIMESTAMP],
    )
    assert verdict.method == "text"
    assert verdict.verdict == "identical"
    assert "applying 1 normalisation" in verdict.detail


def test_text_timestamp_without_normalisation_is_different(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "run.log",
        "started 2024-01-02T03:04:05\nresult 42\n",
        "started 2025-06-07T08:09:10\nresult 42\n",
        method="text",
    )
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("1 of 2 lines differ")
    assert "first at line 1" in verdict.detail
    assert verdict.differing_fraction == 0.5
    (difference,) = verdict.differences
    assert difference.where == "line 1"
    assert difference.expected == "started 2024-01-02T03:04:05"
    assert difference.actual == "started 2025-06-07T08:09:10"


def test_text_normalisation_is_shown_in_the_differences(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "run.log",
        "at 2024-01-02T03:04:05 value 1\n",
        "at 2025-01-02T03:04:05 value 2\n",
        normalize=[TIMESTAMP],
    )
    assert verdict.verdict == "different"
    assert verdict.differences[0].expected == "at <time> value 1"


def test_text_inserted_and_deleted_lines_are_located(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.txt", "a\nb\nc\nd\n", "a\nnew\nb\nc\n", method="text")
    assert verdict.verdict == "different"
    wheres = [(d.where, d.expected, d.actual) for d in verdict.differences]
    assert wheres == [("line 2", None, "new"), ("line 4", "d", None)]


def test_text_keeps_at_most_20_differences_but_counts_all(tmp_path: Path) -> None:
    expected = "".join(f"value {i}\n" for i in range(30))
    actual = "".join(f"VALUE {i}\n" for i in range(30))
    verdict = check(tmp_path, "t.txt", expected, actual, method="text")
    assert verdict.detail.startswith("30 of 30 lines differ")
    assert len(verdict.differences) == 20
    assert [d.where for d in verdict.differences[:2]] == ["line 1", "line 2"]


def test_text_missing_final_newline_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.txt", "a\n", "a", method="text")
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "line 2"


def test_text_distinct_undecodable_bytes_stay_distinct(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.txt", b"caf\xe9\n", b"caf\xe8\n", method="text")
    assert verdict.verdict == "different"
    assert verdict.differences[0].expected == "caf\ufffd"


def test_text_bad_replacement_template_does_not_raise(tmp_path: Path) -> None:
    rule = Normalization(pattern=r"\d+", replacement=r"\1")
    verdict = check(tmp_path, "t.txt", "a 1\n", "a 2\n", normalize=[rule])
    assert verdict.verdict == "different"
    assert "could not be applied" in verdict.detail


# --- numeric: JSON ------------------------------------------------------------------------

METRICS = {"a": {"b": [0.5, 2.0, 3.0], "name": "model"}, "auc": 0.91, "ok": True, "n": None}


def test_json_noise_far_below_rtol_is_within_tolerance(tmp_path: Path) -> None:
    noisy = json.loads(json.dumps(METRICS))
    noisy["auc"] = 0.91 + 3.2e-12
    noisy["a"]["b"][0] = 0.5 + 1e-15
    verdict = check(tmp_path, "m.json", dumps(METRICS), dumps(noisy), rtol=1e-9)
    assert verdict.verdict == "within_tolerance"
    assert verdict.method == "numeric"
    assert verdict.max_abs_deviation == pytest.approx(abs(noisy["auc"] - 0.91))
    assert verdict.max_rel_deviation == pytest.approx(abs(noisy["auc"] - 0.91) / 0.91)
    assert verdict.detail.startswith("max |Δ| 3.2e-12 (rel 3.52e-12) at $.auc, within rtol=1e-09")
    assert verdict.differing_fraction == 0.0
    assert verdict.differences == []


def test_json_formatting_only_is_within_tolerance_with_zero_deviation(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", json.dumps(METRICS), dumps(METRICS), method="numeric")
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_abs_deviation == 0.0
    assert "all 7 values equal" in verdict.detail


def test_json_value_off_is_different_with_its_path(tmp_path: Path) -> None:
    changed = json.loads(json.dumps(METRICS))
    changed["a"]["b"][1] = 2.5
    verdict = check(tmp_path, "m.json", dumps(METRICS), dumps(changed), rtol=0.01)
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert difference.where == "$.a.b[1]"
    assert (difference.expected, difference.actual) == ("2.0", "2.5")
    assert difference.abs_deviation == 0.5
    assert difference.rel_deviation == 0.25
    assert verdict.max_abs_deviation == 0.5
    assert verdict.differing_fraction == pytest.approx(1 / 7)
    assert "1 of 7 values differ" in verdict.detail
    assert "$.a.b[1]: 2.0 -> 2.5" in verdict.detail
    assert "rtol=0.01" in verdict.detail


def test_json_atol_allows_deviation_from_zero(tmp_path: Path) -> None:
    assert check(tmp_path, "m.json", "[0.0]", "[1e-10]", atol=1e-9).verdict == "within_tolerance"
    assert check(tmp_path, "m.json", "[0.0]", "[1e-10]", rtol=0.5).verdict == "different"


def test_json_numeric_without_tolerance_requires_equal_values(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", "[1.0]", "[1.0000001]", method="numeric")
    assert verdict.verdict == "different"
    assert "rtol=0, atol=0" in verdict.detail


def test_json_key_missing_is_named(tmp_path: Path) -> None:
    changed = json.loads(json.dumps(METRICS))
    del changed["a"]["name"]
    changed["extra key"] = 1
    verdict = check(tmp_path, "m.json", dumps(METRICS), dumps(changed), rtol=1e-6)
    assert verdict.verdict == "different"
    assert "first: $.a.name missing in actual" in verdict.detail
    assert [(d.where, d.expected, d.actual) for d in verdict.differences] == [
        ("$.a.name", '"model"', None),
        ('$["extra key"]', None, "1"),
    ]


def test_json_list_length_is_named(tmp_path: Path) -> None:
    changed = json.loads(json.dumps(METRICS))
    changed["a"]["b"].pop()
    verdict = check(tmp_path, "m.json", dumps(METRICS), dumps(changed), rtol=1e-6)
    assert verdict.verdict == "different"
    assert "$.a.b has 3 items in expected, 2 in actual" in verdict.detail
    (difference,) = verdict.differences
    assert (difference.where, difference.expected, difference.actual) == (
        "$.a.b",
        "3 items",
        "2 items",
    )


def test_json_type_change_is_named(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", '{"x": 1}', '{"x": "1"}', rtol=1e-6)
    assert verdict.verdict == "different"
    assert "$.x is a number in expected, a string in actual" in verdict.detail


def test_json_boolean_is_not_a_number(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", '{"x": 1}', '{"x": true}', rtol=1.0)
    assert verdict.verdict == "different"
    assert "a boolean in actual" in verdict.detail


def test_json_strings_must_be_equal(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", '{"s": "a"}', '{"s": "b"}', rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.detail == '1 of 1 values differ; first: $.s: "a" -> "b"'
    assert verdict.max_abs_deviation is None


def test_json_nan_equals_nan_and_infinity_is_far_from_a_number(tmp_path: Path) -> None:
    same = check(tmp_path, "m.json", "[NaN, 1.0]", "[NaN,  1.0]", rtol=1e-9)
    assert same.verdict == "within_tolerance"
    far = check(tmp_path, "m.json", "[Infinity]", "[1e308]", rtol=1.0)
    assert far.verdict == "different"
    assert far.max_abs_deviation == math.inf
    nan = check(tmp_path, "m.json", "[NaN]", "[1.0]", rtol=1.0)
    assert nan.verdict == "different"


def test_json_huge_integers_compare_without_overflow(tmp_path: Path) -> None:
    big = "1" + "0" * 400
    assert (
        check(tmp_path, "m.json", f"[{big}]", f"[ {big}]", rtol=0.1).verdict == "within_tolerance"
    )
    assert check(tmp_path, "m.json", f"[{big}]", "[1]", rtol=0.1).verdict == "different"


def test_json_keeps_20_differences_in_document_order(tmp_path: Path) -> None:
    expected = {f"k{i:02d}": i for i in range(30)}
    actual = {f"k{i:02d}": i + 100 for i in range(30)}
    verdict = check(tmp_path, "m.json", dumps(expected), dumps(actual), atol=1)
    assert verdict.verdict == "different"
    assert len(verdict.differences) == 20
    assert [d.where for d in verdict.differences[:3]] == ["$.k00", "$.k01", "$.k02"]
    assert verdict.differing_fraction == 1.0


def test_json_deep_nesting_does_not_overflow(tmp_path: Path) -> None:
    depth = 500
    verdict = check(
        tmp_path,
        "m.json",
        "[" * depth + "1" + "]" * depth,
        "[" * depth + "2" + "]" * depth,
        rtol=0.1,
    )
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "$" + "[0]" * depth


def test_json_corrupt_actual_is_different_with_a_clear_detail(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", dumps(METRICS), '{"auc": 0.9', rtol=1e-9)
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not parse actual as JSON:")
    assert "expected" not in verdict.detail
    assert verdict.actual_sha256 == sha('{"auc": 0.9')


def test_json_corrupt_on_both_sides_names_both(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", "{", "[", rtol=1e-9)
    assert "could not parse expected as JSON" in verdict.detail
    assert "could not parse actual as JSON" in verdict.detail


def test_json_invalid_utf8_is_unparseable(tmp_path: Path) -> None:
    verdict = check(tmp_path, "m.json", '"a"', b'"\xff"', rtol=1e-9)
    assert verdict.verdict == "different"
    assert "could not parse actual as JSON" in verdict.detail


# --- numeric: CSV / TSV -------------------------------------------------------------------

TABLE = "name,a,b\nx,1.0,2.0\ny,3.0,4.0\nz,5.0,6.0\n"


def test_csv_changed_cell_names_row_and_column(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, TABLE.replace("4.0", "4.5"), rtol=1e-6)
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert difference.where == "row 2, column 'b'"
    assert (difference.expected, difference.actual) == ("4.0", "4.5")
    assert difference.abs_deviation == 0.5
    assert verdict.differing_fraction == pytest.approx(1 / 12)  # 3 header cells + 9 cells


def test_csv_within_tolerance(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, TABLE.replace("6.0", "6.0000001"), rtol=1e-6)
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_abs_deviation == pytest.approx(1e-7)
    assert "at row 3, column 'b'" in verdict.detail


def test_csv_text_cell_changed(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, TABLE.replace("y,", "Y,"), rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "row 2, column 'name'"
    assert "'y' -> 'Y'" in verdict.detail


def test_csv_quoting_and_crlf_only_is_within_tolerance(tmp_path: Path) -> None:
    quoted = '"name","a","b"\r\n"x",1.0,2.0\r\n"y",3.0,4.0\r\n"z",5.0,6.0\r\n'
    verdict = check(tmp_path, "t.csv", TABLE, quoted, rtol=1e-6)
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_abs_deviation == 0.0


def test_csv_header_change_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, TABLE.replace("name,a,b", "name,a,c"), rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "header, column 3"


def test_csv_row_count_change_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, TABLE + "w,7.0,8.0\n", rtol=1.0)
    assert verdict.verdict == "different"
    assert "expected has 3 data rows, actual 4" in verdict.detail


def test_csv_column_count_change_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", "a,b\n1,2\n", "a,b,c\n1,2,3\n", rtol=1.0)
    assert verdict.verdict == "different"
    assert "expected has 2 columns, actual 3" in verdict.detail


def test_csv_without_header_names_columns_by_number(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", "1,2\n3,4\n", "1,2\n3,5\n", rtol=0.01)
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "row 2, column 2"


def test_csv_ragged_is_different_and_says_where(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", "a,b\n1,2\n3\n", TABLE, rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.detail == "could not parse expected as CSV: line 3 has 1 fields, the first row 2"


def test_csv_bad_quoting_is_unparseable(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, 'name,a,b\n"x"y,1,2\n', rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not parse actual as CSV: line 2:")


def test_csv_empty_actual_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.csv", TABLE, "", rtol=1.0)
    assert verdict.verdict == "different"
    assert "actual has no rows" in verdict.detail


def test_tsv_within_tolerance_and_different(tmp_path: Path) -> None:
    table = TABLE.replace(",", "\t")
    close = check(tmp_path, "t.tsv", table, table.replace("2.0", "2.0001"), rtol=1e-3)
    assert close.verdict == "within_tolerance"
    far = check(tmp_path, "t.tsv", table, table.replace("2.0", "2.1"), rtol=1e-3)
    assert far.verdict == "different"
    assert far.differences[0].where == "row 1, column 'b'"


def test_tsv_is_not_split_on_commas(tmp_path: Path) -> None:
    verdict = check(tmp_path, "t.tsv", "a\tb\n1,5\t2\n", "a\tb\n1,6\t2\n", rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "row 1, column 'a'"


# --- numeric: numbers in text ------------------------------------------------------------

LOG = "epoch 1: loss=0.25 acc 0.9\nepoch 2: loss=0.125 acc 0.95\ndone in 12.5s\n"


def test_text_numbers_within_tolerance(tmp_path: Path) -> None:
    actual = LOG.replace("0.125", "0.1250001").replace("\n", "\r\n")
    verdict = check(tmp_path, "train.log", LOG, actual, rtol=1e-5)
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_abs_deviation == pytest.approx(1e-7)
    assert "at line 2, column 15" in verdict.detail


def test_text_numbers_outside_tolerance(tmp_path: Path) -> None:
    verdict = check(tmp_path, "train.log", LOG, LOG.replace("12.5s", "14.5s"), rtol=0.1)
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert difference.where == "line 3, column 9"
    assert (difference.expected, difference.actual) == ("12.5", "14.5")


def test_text_numbers_other_text_must_match(tmp_path: Path) -> None:
    verdict = check(tmp_path, "train.log", LOG, LOG.replace("done", "DONE"), rtol=1.0)
    assert verdict.verdict == "different"
    assert "line 3: the text around the numbers differs" in verdict.detail


def test_text_numbers_glued_to_words_are_text(tmp_path: Path) -> None:
    verdict = check(tmp_path, "r.txt", "run42 ok\n", "run43 ok\n", rtol=1.0)
    assert verdict.verdict == "different"


def test_text_numbers_line_count_change(tmp_path: Path) -> None:
    verdict = check(tmp_path, "r.txt", "1\n2\n", "1\n2\n3\n", rtol=1.0)
    assert verdict.verdict == "different"
    assert "expected has 3 lines, actual 4" in verdict.detail


def test_text_numbers_apply_the_rule_normalisations(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "r.txt",
        "at 2024-01-02T03:04:05 loss 0.5\n",
        "at 2025-01-02T03:04:05 loss 0.5000001\n",
        rtol=1e-3,
        normalize=[TIMESTAMP],
    )
    assert verdict.verdict == "within_tolerance"


# --- numeric: .npy / .npz ------------------------------------------------------------------


def test_npy_within_tolerance(tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    verdict = check(tmp_path, "x.npy", npy(base), npy(base + 1e-12), atol=1e-9)
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_abs_deviation == pytest.approx(1e-12, rel=1e-3)
    assert verdict.differing_fraction == 0.0


def test_npy_value_off_names_the_index(tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    changed = base.copy()
    changed[1, 2] += 0.5
    verdict = check(tmp_path, "x.npy", npy(base), npy(changed), rtol=1e-6)
    assert verdict.verdict == "different"
    (difference,) = verdict.differences
    assert difference.where == "[1, 2]"
    assert (difference.expected, difference.actual) == ("6.0", "6.5")
    assert verdict.max_abs_deviation == 0.5
    assert verdict.differing_fraction == pytest.approx(1 / 12)


def test_npy_nan_at_the_same_positions_is_equal(tmp_path: Path) -> None:
    base = np.array([1.0, np.nan, 3.0])
    verdict = check(tmp_path, "x.npy", npy(base), npy(base + 1e-12), rtol=1e-6)
    assert verdict.verdict == "within_tolerance"


def test_npy_nan_at_other_positions_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "x.npy", npy([1.0, np.nan, 3.0]), npy([1.0, 2.0, np.nan]), rtol=1.0)
    assert verdict.verdict == "different"
    assert [(d.where, d.expected, d.actual) for d in verdict.differences] == [
        ("[1]", "nan", "2.0"),
        ("[2]", "3.0", "nan"),
    ]
    assert verdict.max_abs_deviation == math.inf


def test_npy_integer_dtypes_compare_as_numbers(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "x.npy",
        npy(np.array([1, 2], dtype=np.int32)),
        npy(np.array([1, 2], dtype=np.uint8)),
        rtol=1e-6,
    )
    assert verdict.verdict == "within_tolerance"


def test_npy_shape_change_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "x.npy", npy(np.zeros((2, 3))), npy(np.zeros((3, 2))), rtol=1.0)
    assert verdict.verdict == "different"
    assert "shape (2, 3) in expected, (3, 2) in actual" in verdict.detail


def test_npy_dtype_kind_change_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "x.npy", npy(np.zeros(3)), npy(np.array(["a", "b", "c"])), rtol=1.0)
    assert verdict.verdict == "different"
    assert "dtype float64 in expected" in verdict.detail


def test_npy_strings_must_be_equal(tmp_path: Path) -> None:
    verdict = check(
        tmp_path, "x.npy", npy(np.array(["a", "b"])), npy(np.array(["a", "c"])), rtol=1.0
    )
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "[1]"


def test_npy_zero_dimensional(tmp_path: Path) -> None:
    verdict = check(tmp_path, "x.npy", npy(np.float64(1.0)), npy(np.float64(2.0)), rtol=0.1)
    assert verdict.differences[0].where == "[()]"


def test_npy_object_array_is_not_loaded(tmp_path: Path) -> None:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    verdict = check(tmp_path, "x.npy", npy([1.0]), out.getvalue(), rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not load actual as NumPy data")


def test_npz_key_missing_is_different(tmp_path: Path) -> None:
    verdict = check(
        tmp_path,
        "r.npz",
        npz(x=np.zeros(3), y=np.ones(2)),
        npz(x=np.zeros(3)),
        rtol=1e-6,
    )
    assert verdict.verdict == "different"
    assert "array 'y' missing in actual" in verdict.detail
    assert verdict.differences[0].where == "y"


def test_npz_element_is_named_with_its_key(tmp_path: Path) -> None:
    base = np.zeros((5, 6))
    changed = base.copy()
    changed[3, 4] = 1.0
    verdict = check(tmp_path, "r.npz", npz(x=base), npz(x=changed), atol=0.1)
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "x[3, 4]"
    assert "x[3, 4]: 0.0 -> 1.0" in verdict.detail


def test_npz_within_tolerance(tmp_path: Path) -> None:
    base = np.linspace(0, 1, 50)
    verdict = check(
        tmp_path,
        "r.npz",
        npz(x=base, n=np.arange(3)),
        npz(x=base * (1 + 1e-12), n=np.arange(3)),
        rtol=1e-9,
    )
    assert verdict.verdict == "within_tolerance"
    assert verdict.max_rel_deviation is not None and verdict.max_rel_deviation < 1e-11


def test_npz_corrupt_is_different(tmp_path: Path) -> None:
    good = npz(x=np.zeros(3))
    verdict = check(tmp_path, "r.npz", good, good[: len(good) // 2], rtol=1.0)
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not load actual as NumPy data")


# --- image --------------------------------------------------------------------------------


def test_image_one_pixel_changed_at_zero_tolerance_is_different(tmp_path: Path) -> None:
    expected = encoded(picture())
    actual = encoded(picture(changes={(3, 4): (1, 2, 3)}))
    verdict = check(tmp_path, "fig.png", expected, actual, method="image")
    assert verdict.verdict == "different"
    assert verdict.differing_fraction == 1 / 100
    assert verdict.max_abs_deviation is not None and verdict.max_abs_deviation > 0
    assert "1 of 100 pixels differ" in verdict.detail
    (difference,) = verdict.differences
    assert difference.where == "pixel (x=3, y=4)"
    assert difference.actual == "(1, 2, 3)"


def test_image_one_pixel_changed_within_pixel_tolerance(tmp_path: Path) -> None:
    expected = encoded(picture())
    actual = encoded(picture(changes={(3, 4): (1, 2, 3)}))
    verdict = check(tmp_path, "fig.png", expected, actual, pixel_tolerance=0.01)
    assert verdict.verdict == "within_tolerance"
    assert verdict.method == "image"
    assert verdict.differing_fraction == 1 / 100
    assert "within pixel_tolerance=0.01" in verdict.detail


def test_png_resaved_with_other_metadata_is_identical(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "plotting library 2.0")
    expected = encoded(picture())
    actual = encoded(picture(), pnginfo=info, compress_level=9)
    assert expected != actual
    verdict = check(tmp_path, "fig.png", expected, actual, method="image")
    assert verdict.verdict == "identical"
    assert "pixels identical" in verdict.detail
    assert verdict.expected_sha256 != verdict.actual_sha256


def test_image_size_change_is_different(tmp_path: Path) -> None:
    verdict = check(
        tmp_path, "fig.png", encoded(picture()), encoded(picture(10, 11)), method="image"
    )
    assert verdict.verdict == "different"
    assert verdict.detail == "size 10x10 in expected, 10x11 in actual"


def test_image_mode_change_is_different(tmp_path: Path) -> None:
    verdict = check(
        tmp_path, "fig.png", encoded(picture()), encoded(picture(mode="RGBA")), method="image"
    )
    assert verdict.verdict == "different"
    assert verdict.detail == "mode RGB in expected, RGBA in actual"


def test_image_sixteen_bit_keeps_its_precision(tmp_path: Path) -> None:
    expected = Image.new("I;16", (4, 4), 1000)
    actual = Image.new("I;16", (4, 4), 1000)
    actual.putpixel((0, 0), 1001)
    verdict = check(tmp_path, "depth.png", encoded(expected), encoded(actual), method="image")
    assert verdict.verdict == "different"
    assert verdict.max_abs_deviation == 1.0


def test_jpeg_recompressed_is_compared_by_pixels(tmp_path: Path) -> None:
    expected = encoded(picture(), "JPEG", quality=95)
    actual = encoded(picture(), "JPEG", quality=50)
    different = check(tmp_path, "fig.jpg", expected, actual, method="image")
    assert different.verdict == "different"
    assert different.differing_fraction is not None and different.differing_fraction > 0
    tolerated = check(tmp_path, "fig.jpg", expected, actual, pixel_tolerance=1.0)
    assert tolerated.verdict == "within_tolerance"


def test_jpeg_same_pixels_other_metadata_is_identical(tmp_path: Path) -> None:
    expected = encoded(picture(), "JPEG", quality=90)
    actual = encoded(picture(), "JPEG", quality=90, comment=b"made elsewhere")
    assert expected != actual
    assert check(tmp_path, "fig.jpg", expected, actual, method="image").verdict == "identical"


def test_palette_images_are_compared_by_colour(tmp_path: Path) -> None:
    expected = picture().convert("P")
    actual = picture(changes={(0, 0): (255, 255, 255)}).convert("P")
    verdict = check(tmp_path, "fig.png", encoded(expected), encoded(actual), method="image")
    assert verdict.verdict == "different"
    assert verdict.differences[0].where == "pixel (x=0, y=0)"
    assert verdict.differences[0].actual == "(255, 255, 255, 255)"


def test_truncated_image_is_different_with_a_clear_detail(tmp_path: Path) -> None:
    good = encoded(picture(40, 40))
    verdict = check(tmp_path, "fig.png", good, good[: len(good) // 2], method="image")
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not decode actual as an image")


def test_not_an_image_is_different(tmp_path: Path) -> None:
    verdict = check(tmp_path, "fig.png", b"plain text", encoded(picture()), method="image")
    assert verdict.verdict == "different"
    assert verdict.detail.startswith("could not decode expected as an image")


def test_animated_frames_are_all_compared(tmp_path: Path) -> None:
    def gif(last: Image.Image) -> bytes:
        out = io.BytesIO()
        picture().save(out, format="GIF", save_all=True, append_images=[last])
        return out.getvalue()

    changed = picture(changes={(5, 5): (255, 255, 255)})
    verdict = check(tmp_path, "anim.gif", gif(picture(mode="L")), gif(changed), method="image")
    assert verdict.verdict == "different"
    assert verdict.differences[0].where.startswith("frame 1, ")


def test_difference_image_marks_differing_pixels_red(tmp_path: Path) -> None:
    expected = write(tmp_path, "e.png", encoded(picture()))
    actual = write(tmp_path, "a.png", encoded(picture(changes={(3, 4): (1, 2, 3)})))
    png = difference_image(expected, actual)
    assert png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (10, 10)
        rgb = image.convert("RGB")
        assert rgb.getpixel((3, 4)) == (255, 0, 0)
        others = {rgb.getpixel((x, y)) for x in range(10) for y in range(10)} - {(255, 0, 0)}
        assert others and all(r == g == b and r >= 170 for r, g, b in others)  # type: ignore[misc]
    assert difference_image(expected, actual) == png


def test_difference_image_of_different_sizes_covers_both(tmp_path: Path) -> None:
    expected = write(tmp_path, "e.png", encoded(picture(10, 10)))
    actual = write(tmp_path, "a.png", encoded(picture(12, 10)))
    with Image.open(io.BytesIO(difference_image(expected, actual))) as image:
        assert image.size == (12, 10)
        assert image.convert("RGB").getpixel((11, 0)) == (255, 0, 0)
        assert image.convert("RGB").getpixel((0, 0)) != (255, 0, 0)


def test_difference_image_of_an_undecodable_file_raises_value_error(tmp_path: Path) -> None:
    expected = write(tmp_path, "e.png", encoded(picture()))
    actual = write(tmp_path, "a.png", b"garbage")
    with pytest.raises(ValueError, match="could not decode actual as an image"):
        difference_image(expected, actual)
