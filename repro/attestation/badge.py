"""An SVG badge for a checked replay attestation: reproduced or not, the date, the key.

Derived from a `CheckedAttestation` only (an attestation whose signature held), never from
typed-in text, so a badge cannot claim more than its attestation. Flat, shields.io-like, no
external fonts, images or scripts: it renders the same in a README, a paper and the report.
"""

from __future__ import annotations

from html import escape

from repro.attestation.check import CheckedAttestation

CHAR_WIDTH = 6.6
"""Average advance of an 11 px sans-serif character, for sizing the two halves."""
GOOD, BAD, LABEL_BG = "#2e7d32", "#c62828", "#555"


def badge_text(att: CheckedAttestation) -> tuple[str, str]:
    """(label, message): ("repro", "reproduced 2024-05-01 · SHA256:ab12cd34")."""
    word = "reproduced" if att.statement.reproduced else "not reproduced"
    day = att.statement.predicate.finished[:10]
    short_key = "SHA256:" + att.keyid[:8]
    return "repro", f"{word} {day} · {short_key}"


def _width(text: str) -> int:
    return int(len(text) * CHAR_WIDTH + 12)


def badge_svg(att: CheckedAttestation) -> str:
    label, message = badge_text(att)
    colour = GOOD if att.statement.reproduced else BAD
    lw, mw = _width(label), _width(message)
    total = lw + mw
    title = escape(f"{label}: {message} — capsule {att.statement.capsule_id[:12]}")
    lbl, msg = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
        f'role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<rect width="{lw}" height="20" fill="{LABEL_BG}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="14" text-anchor="middle">{lbl}</text>'
        f'<text x="{lw + mw / 2:.1f}" y="14" text-anchor="middle">{msg}</text>'
        "</g></svg>\n"
    )
