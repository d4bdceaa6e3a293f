"""Keep the API token out of everything a server says back: error texts, answers and links.

A substring replace on the final text is not enough (issue 16): a server can echo the token
split by markup (`tok<b></b>en`), HTML- or URL-encoded (`%74ok...`), beyond the 300
characters an error line keeps, or inside the links of a successful answer, from where it
would reach stdout, the journal and the receipt. So:

- every server text is masked *before* it is parsed or cut, in its raw, URL-encoded and
  HTML-escaped forms;
- a text whose normalised form (tags removed, entities and %-escapes decoded, whitespace and
  invisible characters dropped) still holds the token, or any 16-character piece of it, is
  withheld entirely: no position-by-position repair is trusted;
- every string of a JSON answer goes through the same mask, and links lose their credential
  query parameters (`access_token=`...) before anything keeps them.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from repro.credentials import strip_url_credentials

MASK = "***"
WITHHELD = "(server text withheld: it held the API token)"
PIECE = 16
"""The shortest piece of the token that counts as the token (a fragment this long is still
most of a secret; shorter ones occur by chance in ids and checksums)."""
_TAGS = re.compile(r"<[^>]{0,200}>")
_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u2060\ufeff\x00-\x1f\x7f]+")


def _normalised(text: str) -> str:
    for _ in range(3):  # nested encodings: %2574 -> %74 -> t
        decoded = html.unescape(unquote(_TAGS.sub("", text)))
        if decoded == text:
            break
        text = decoded
    return _INVISIBLE.sub("", _TAGS.sub("", text))


class TokenMask:
    """Masks one token (none: every method is the identity)."""

    def __init__(self, token: str | None) -> None:
        self._token = token or None
        forms: set[str] = set()
        pieces: list[str] = []
        if self._token:
            t = self._token
            forms = {t, quote(t, safe=""), quote_plus(t), html.escape(t)}
            forms |= {f.lower() for f in forms if "%" in f} | {f.upper() for f in forms if "%" in f}
            size = min(PIECE, len(t))
            pieces = [t[i : i + size] for i in range(len(t) - size + 1)]
        self._forms = sorted(forms, key=len, reverse=True)
        self._pieces = pieces

    def text(self, text: str) -> str:
        """`text` with the token masked in every form; withheld when it hides in one that
        cannot be masked in place."""
        if self._token is None or not text:
            return text
        for form in self._forms:
            text = text.replace(form, MASK)
        flat = _normalised(text)
        if any(piece in flat for piece in self._pieces):
            return WITHHELD
        return text

    def body(self, body: bytes) -> bytes:
        """A raw answer body, masked before anything parses or cuts it."""
        if self._token is None or not body:
            return body
        text = body.decode("utf-8", "replace")
        masked = self.text(text)
        return body if masked == text else masked.encode()

    def answer(self, data: Any) -> Any:
        """A parsed JSON answer with every string masked and every URL-like string stripped
        of credential query parameters (links are kept, tokens are not)."""
        if isinstance(data, str):
            if "://" in data:
                data = strip_url_credentials(data)
            return self.text(data)
        if isinstance(data, list):
            return [self.answer(item) for item in data]
        if isinstance(data, dict):
            return {key: self.answer(value) for key, value in data.items()}
        return data
