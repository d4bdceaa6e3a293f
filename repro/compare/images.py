"""Image comparison pixel by pixel (any format Pillow decodes), and the difference picture.

Both images are decoded whole into memory; Pillow's decompression-bomb limit applies.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from repro.compare.finding import MAX_DIFFERENCES, Finding, fmt, unreadable
from repro.compare.verdict import Difference

# What Pillow raises for files it cannot decode: plugins differ (truncated data is OSError,
# some header parsers raise SyntaxError or struct.error, bombs DecompressionBombError).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

_FADE = 0.3
"""Share of the expected image's contrast kept under the red marks of a difference image."""


def compare_images(
    expected: Path | IO[bytes], actual: Path | IO[bytes], pixel_tolerance: float
) -> Finding:
    """Same frames, size and mode required; then the fraction of differing pixels is tested.

    A pixel differs when any channel differs. Palette images are compared as RGBA colours,
    other modes on their own channels (so 16-bit and float images keep their precision).
    """
    decoded: list[list[Image.Image]] = []
    problems = []
    for side, path in (("expected", expected), ("actual", actual)):
        try:
            decoded.append(_frames(path))
        except _DECODE_ERRORS as exc:
            problems.append(f"could not decode {side} as an image: {exc}")
    if problems:
        return unreadable(problems)
    frames_e, frames_a = decoded
    if len(frames_e) != len(frames_a):
        return Finding(
            verdict="different",
            detail=f"{len(frames_e)} frames in expected, {len(frames_a)} in actual",
        )
    shape_problems = []
    for i, (frame_e, frame_a) in enumerate(zip(frames_e, frames_a, strict=True)):
        frame = f"frame {i}: " if len(frames_e) > 1 else ""
        if frame_e.size != frame_a.size:
            shape_problems.append(
                f"{frame}size {_size(frame_e)} in expected, {_size(frame_a)} in actual"
            )
        if frame_e.mode != frame_a.mode:
            shape_problems.append(
                f"{frame}mode {frame_e.mode} in expected, {frame_a.mode} in actual"
            )
    if shape_problems:
        return Finding(verdict="different", detail="; ".join(shape_problems))

    total = differing = 0
    max_channel = 0.0
    differences: list[Difference] = []
    for i, (frame_e, frame_a) in enumerate(zip(frames_e, frames_a, strict=True)):
        pixels_e, pixels_a = _pixels(frame_e), _pixels(frame_a)
        gap = _channel_gap(pixels_e, pixels_a)
        mask = gap > 0
        total += mask.size
        differing += int(mask.sum())
        if mask.any():
            max_channel = max(max_channel, float(gap.max()))
        for y, x in np.argwhere(mask)[: MAX_DIFFERENCES - len(differences)]:
            prefix = f"frame {i}, " if len(frames_e) > 1 else ""
            differences.append(
                Difference(
                    where=f"{prefix}pixel (x={x}, y={y})",
                    expected=_pixel_text(pixels_e[y, x]),
                    actual=_pixel_text(pixels_a[y, x]),
                    abs_deviation=float(gap[y, x]),
                )
            )
    described = f"{_size(frames_e[0])} {frames_e[0].mode}"
    if len(frames_e) > 1:
        described += f", {len(frames_e)} frames"
    if differing == 0:
        return Finding(
            verdict="identical",
            detail=f"pixels identical ({described}); the files differ only in encoding or metadata",
            differing_fraction=0.0,
        )
    fraction = differing / total
    summary = (
        f"{differing} of {total} pixels differ ({fraction:.3%}), max channel difference "
        f"{fmt(max_channel)}"
    )
    if fraction <= pixel_tolerance:
        return Finding(
            verdict="within_tolerance",
            detail=f"{summary}; within pixel_tolerance={fmt(pixel_tolerance)}",
            max_abs_deviation=max_channel,
            differing_fraction=fraction,
            differences=tuple(differences),
        )
    return Finding(
        verdict="different",
        detail=f"{summary}; above pixel_tolerance={fmt(pixel_tolerance)}",
        max_abs_deviation=max_channel,
        differing_fraction=fraction,
        differences=tuple(differences),
    )


def difference_image(expected: Path | IO[bytes], actual: Path | IO[bytes]) -> bytes:
    """A PNG of the expected image faded to light grey, with differing pixels in red.

    Of the first frame only. When the sizes differ the canvas covers both and pixels present
    in only one image count as differing. Raises ValueError when a file cannot be decoded.
    """
    frames = []
    for side, path in (("expected", expected), ("actual", actual)):
        try:
            frames.append(_frames(path)[0])
        except _DECODE_ERRORS as exc:
            raise ValueError(f"could not decode {side} as an image: {exc}") from exc
    frame_e, frame_a = frames
    if frame_e.size == frame_a.size and frame_e.mode == frame_a.mode:
        mask = _channel_gap(_pixels(frame_e), _pixels(frame_a)) > 0
    else:
        mask = _padded_mask(frame_e, frame_a)
    height, width = mask.shape
    grey = np.full((height, width), 255.0)
    luminance = np.asarray(frame_e.convert("RGBA").convert("L"), dtype=np.float64)
    grey[: luminance.shape[0], : luminance.shape[1]] = luminance
    faded = (255.0 - (255.0 - grey) * _FADE).round().astype(np.uint8)
    picture = np.repeat(faded[:, :, None], 3, axis=2)
    picture[mask] = (255, 0, 0)
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="PNG")
    return out.getvalue()


def _frames(path: Path | IO[bytes]) -> list[Image.Image]:
    with Image.open(path) as image:
        frames = []
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            frames.append(image.copy())  # copy() decodes the frame now, inside the try
        return frames


def _size(image: Image.Image) -> str:
    return f"{image.width}x{image.height}"


def _pixels(image: Image.Image) -> npt.NDArray[np.float64]:
    """(height, width, channels) as float64: exact for every 8-, 16- and 32-bit mode."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    array = np.asarray(image, dtype=np.float64)
    return array[:, :, None] if array.ndim == 2 else array


def _channel_gap(
    pixels_e: npt.NDArray[np.float64], pixels_a: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Per pixel, the largest channel difference (NaN vs NaN is none, NaN vs a value inf)."""
    with np.errstate(invalid="ignore"):
        same = (pixels_e == pixels_a) | (np.isnan(pixels_e) & np.isnan(pixels_a))
        gap = np.where(same, 0.0, np.abs(pixels_a - pixels_e))
    gap[np.isnan(gap)] = np.inf
    result: npt.NDArray[np.float64] = gap.max(axis=2)
    return result


def _padded_mask(frame_e: Image.Image, frame_a: Image.Image) -> npt.NDArray[np.bool_]:
    rgba_e = np.asarray(frame_e.convert("RGBA"), dtype=np.int16)
    rgba_a = np.asarray(frame_a.convert("RGBA"), dtype=np.int16)
    height = max(rgba_e.shape[0], rgba_a.shape[0])
    width = max(rgba_e.shape[1], rgba_a.shape[1])
    canvases = []
    for rgba in (rgba_e, rgba_a):
        canvas = np.full((height, width, 5), -1, dtype=np.int16)  # channel 4: "no pixel here"
        canvas[: rgba.shape[0], : rgba.shape[1], :4] = rgba
        canvas[: rgba.shape[0], : rgba.shape[1], 4] = 0
        canvases.append(canvas)
    mask: npt.NDArray[np.bool_] = (canvases[0] != canvases[1]).any(axis=2)
    return mask


def _pixel_text(values: npt.NDArray[Any]) -> str:
    numbers = [int(v) if float(v).is_integer() else float(v) for v in values]
    return str(tuple(numbers)) if len(numbers) > 1 else str(numbers[0])


@dataclass(frozen=True)
class DifferenceSummary:
    """The numbers behind a difference image (first frame), for a reader rather than a list
    of pixels: how many differ, by how much, and where."""

    differing: int
    total: int
    max_difference: float
    """The largest channel difference of any pixel (inf where one side is NaN)."""
    mean_difference: float
    """The mean of each differing pixel's largest channel difference."""
    box: tuple[int, int, int, int] | None
    """(left, top, right, bottom) of the differing pixels, inclusive; None when none differ."""
    same_size: bool


def difference_summary(expected: Path | IO[bytes], actual: Path | IO[bytes]) -> DifferenceSummary:
    """The summary of the pixels that differ in the first frame (as in difference_image).
    Raises ValueError when a file cannot be decoded."""
    frames = []
    for side, path in (("expected", expected), ("actual", actual)):
        try:
            frames.append(_frames(path)[0])
        except _DECODE_ERRORS as exc:
            raise ValueError(f"could not decode {side} as an image: {exc}") from exc
    frame_e, frame_a = frames
    same = frame_e.size == frame_a.size and frame_e.mode == frame_a.mode
    if same:
        gap = _channel_gap(_pixels(frame_e), _pixels(frame_a))
        mask = gap > 0
    else:
        mask = _padded_mask(frame_e, frame_a)
        gap = mask.astype(np.float64) * np.inf  # no channel difference to speak of
    differing = int(mask.sum())
    if differing == 0:
        return DifferenceSummary(0, mask.size, 0.0, 0.0, None, same)
    ys, xs = np.nonzero(mask)
    values = gap[mask]
    return DifferenceSummary(
        differing=differing,
        total=int(mask.size),
        max_difference=float(values.max()),
        mean_difference=float(values.mean()),
        box=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
        same_size=same,
    )
