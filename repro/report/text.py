"""Capsule text made safe to show: control characters, escape sequences and bidi overrides
become visible escapes, on every terminal line and in every JSON document.

A capsule is a stranger's text. Printed raw, an ESC sequence clears the screen, retitles the
window or moves the cursor over a warning; a bidi override reorders what a line seems to say.
`printable` is the one function every renderer passes capsule-derived text through; `json_text`
does the same for --json output with JSON's own escapes, so the data stays exact.
"""

from __future__ import annotations

import re

_ALWAYS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but \t and \n), DEL, C1 (8-bit CSI, OSC, ...)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates (undecodable bytes): no terminal can print them
)
_UNSAFE_LINES = re.compile(f"[{_ALWAYS}]")
_UNSAFE_ONE_LINE = re.compile(f"[{_ALWAYS}\t\n]")
# In JSON, C0 controls are escaped by json.dumps already; the rest of the set is not.
_UNSAFE_JSON = re.compile(f"[{_ALWAYS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every control character (ESC included, so no escape sequence survives),
    bidi control and lone surrogate shown as a visible escape (\\x1b, \\u202e). One line
    unless `lines`: then newlines and tabs stay."""
    return (_UNSAFE_LINES if lines else _UNSAFE_ONE_LINE).sub(_escape, text)


def json_text(document: str) -> str:
    """A JSON document (json.dumps with ensure_ascii=False) with the characters a terminal
    would act on written as \\uXXXX escapes: the same data, valid UTF-8, inert on a screen."""
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
