"""The token never survives a server's echo: split by markup, encoded, past the cut, in links."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from repro.publish.error_body import parse_error_body
from repro.publish.masking import WITHHELD, TokenMask
from repro.publish.models import Deposition

TOKEN = "zt" + "Mask3dT0kenAbCdEfGh1234567890qwertyuiopZXCV"  # a test token


def pieces(text: str) -> list[str]:
    return [TOKEN[i : i + 12] for i in range(len(TOKEN) - 11) if TOKEN[i : i + 12] in text]


@pytest.mark.parametrize(
    "body",
    [
        f'{{"message": "Permission denied for {TOKEN}."}}',
        f'{{"message": "denied: {quote(TOKEN)}"}}',
        f'{{"message": "denied: {TOKEN[:20]}<b></b>{TOKEN[20:]}"}}',
        f"<html><h1>Denied {TOKEN[:10]}<span>{TOKEN[10:30]}</span>{TOKEN[30:]}</h1></html>",
        f"<html><h1>Denied {TOKEN[:25]}&#x{ord(TOKEN[25]):x};{TOKEN[26:]}</h1></html>",
        f'{{"message": "{"x" * 290} {TOKEN}"}}',  # the cut at 300 falls inside the token
        f'{{"message": "bad", "errors": [{{"field": "t", "messages": ["{TOKEN}"]}}]}}',
        f"denied {quote(quote(TOKEN))}",
        f"denied {TOKEN[:30]}\u200b{TOKEN[30:]}",
    ],
)
def test_an_echoed_token_is_masked_before_the_body_is_parsed_or_cut(body: str) -> None:
    mask = TokenMask(TOKEN)
    message, fields = parse_error_body(mask.body(body.encode()))
    shown = " ".join([mask.text(message), *(mask.text(m) for _f, m in fields)])
    assert TOKEN not in shown and pieces(shown) == [], shown
    assert shown.strip()


def test_answers_lose_the_token_in_every_string_and_links_their_credentials() -> None:
    mask = TokenMask(TOKEN)
    answer = {
        "id": 7,
        "metadata": {"notes": f"made with {TOKEN}", "title": "A study"},
        "links": {
            "bucket": f"https://z.test/api/files/b-7?access_token={TOKEN}",
            "html": f"https://z.test/deposit/7?access_token={TOKEN}&tab=files",
        },
    }
    clean = mask.answer(answer)
    assert TOKEN not in repr(clean) and clean["metadata"]["title"] == "A study"
    assert clean["metadata"]["notes"] == "made with ***"
    assert clean["links"] == {
        "bucket": "https://z.test/api/files/b-7",
        "html": "https://z.test/deposit/7?tab=files",
    }
    # The models strip credentials from links even when nothing masked the answer first.
    dep = Deposition.model_validate({"id": 7, "links": answer["links"]})
    assert dep.links.bucket == "https://z.test/api/files/b-7" and TOKEN not in repr(dep)


def test_no_token_means_no_change_and_ordinary_text_is_kept() -> None:
    assert TokenMask(None).text(f"x {TOKEN}") == f"x {TOKEN}"
    mask = TokenMask(TOKEN)
    assert mask.text("Validation error: metadata.title required") == (
        "Validation error: metadata.title required"
    )
    assert mask.text(f"<p>{TOKEN[:10]}</p> {TOKEN[-10:]}") != WITHHELD  # short pieces are noise
