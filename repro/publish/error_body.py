"""Zenodo's error answers, in every shape it sends them, reduced to one line and field errors.

Shapes (ZENODO.md): ``{"status", "message", "errors": [{"field", "messages": [...]}]}``
today, ``{"errors": [{"field", "message"}]}`` in the docs' older form, ``{"errors": "text"}``
on some paths, and HTML or plain text from the gateway (502/504).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any


def _text_of_html(body: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.IGNORECASE | re.DOTALL)
    found = heading or title
    chosen = found.group(1) if found is not None else body
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", chosen)).split())


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str, list[tuple[str, str]]]:
    """One message and the (field, message) pairs, from any error body Zenodo sends:
    ``{"status", "message", "errors": [{"field", "messages": [...]}]}`` (today),
    ``{"errors": [{"field", "message"}]}`` (the docs' older form), ``{"errors": "text"}``,
    ``{"message": "..."}``, and HTML or plain text from the gateway (502/504)."""
    text = body.decode("utf-8", "replace")
    try:
        data: Any = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if data is None:
        if "html" in content_type.lower() or re.search(r"<\s*(html|body|h1|title)", text, re.I):
            return _text_of_html(text)[:300], []
        return " ".join(text.split())[:300] or "(no message)", []
    if not isinstance(data, dict):
        return " ".join(str(data).split())[:300], []
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    fields: list[tuple[str, str]] = []
    errors = data.get("errors")
    if isinstance(errors, str):
        message = f"{message}: {errors}" if message else errors
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, str):
                fields.append(("", item))
                continue
            if not isinstance(item, dict):
                continue
            name = str(item.get("field") or "")
            messages = item.get("messages")
            if isinstance(messages, list):
                fields.extend((name, str(m)) for m in messages)
            elif isinstance(messages, dict):  # nested {"subfield": ["msg"]}
                for sub, msgs in messages.items():
                    for m in msgs if isinstance(msgs, list) else [msgs]:
                        fields.append((f"{name}.{sub}" if name else str(sub), str(m)))
            elif item.get("message") is not None:
                fields.append((name, str(item["message"])))
    if not message and isinstance(data.get("error"), str):
        message = data["error"]
    return message or "(no message)", fields


def describe(message: str, fields: list[tuple[str, str]]) -> str:
    """The message and its field errors as the one line an error shows."""
    if not fields:
        return message
    details = "; ".join(f"{f}: {m}" if f else m for f, m in fields)
    return f"{message} ({details})" if message != "(no message)" else details
