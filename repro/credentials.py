"""Credentials inside URLs and values: strip them from what is recorded, find them in text.

The one place that knows the forms a credential takes in a locator: ``scheme://user:pass@``
(any scheme: https, postgres, redis, amqp, ...), a token as the user
(``https://TOKEN@host``), tokens in the query string (``?access_token=``, ``?private_token=``,
``?sig=``...), and git's scp-like ``user:pass@host:path``. Used by capture (git remotes,
requirement URLs, recorded variables), by the secret scanner and by the Zenodo client
(links a server hands out). Imports nothing of repro.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_KEYS = re.compile(
    r"(?i)^(?:access_?token|private_?token|auth_?token|token|api_?key|apikey|key|secret|"
    r"client_?secret|password|passwd|pwd|sig|signature|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|code|session|sessionid|jwt)$"
)
"""Query parameters that carry credentials (OAuth, GitLab, S3 and Azure presigned URLs)."""

_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#]*)@")
_SCP_LIKE = re.compile(r"^(?P<userinfo>[^/@:\s]+(?::[^/@\s]*)?)@(?P<host>[^/:\s]+):(?P<path>.*)$")
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,31}$")

PLACEHOLDERS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "changeme",
        "change_me",
        "example",
        "placeholder",
        "redacted",
        "hidden",
        "dummy",
        "none",
        "null",
        "user",
        "username",
        "mypassword",
        "yourpassword",
        "your_password",
        "your-password",
        "your_token",
        "your-token",
    }
)


def is_placeholder(value: str) -> bool:
    """A value that stands for a secret rather than being one: `${VAR}`, `$VAR`, `<pass>`,
    `{password}`, `%(password)s`, `***`, `xxxx`, `...`, the word "password" itself."""
    v = value.strip().strip("\"'")
    if not v or v.lower() in PLACEHOLDERS or v.lower().startswith(("your", "my_", "<")):
        return True
    if v[0] in "$%{[(*" or v.endswith(("}", ">")):
        return True
    return bool(re.fullmatch(r"[*xX.•_\-#]+", v))


def _clean_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not SECRET_QUERY_KEYS.match(k)]
    return urlencode(kept) if kept != pairs else query


def strip_url_credentials(url: str, *, keep_user: bool = False) -> str:
    """`url` as it may be recorded or shown: no password, no token in the user part, no
    credential query parameters (other parameters and the fragment are kept).

    `keep_user` keeps a plain user name (`ssh://git@host/x`), never a password. A URL
    without a scheme is returned as it is (see `strip_remote_credentials` for git's
    scp-like form)."""
    match = _URL_USERINFO.match(url)
    if match is not None:
        user = match.group("userinfo").split(":", 1)[0]
        keep = keep_user and ":" not in match.group("userinfo") and _USER_NAME.match(user)
        url = match.group("scheme") + (f"{user}@" if keep else "") + url[match.end() :]
    parts = urlsplit(url)
    if parts.scheme and parts.query:
        url = urlunsplit(parts._replace(query=_clean_query(parts.query)))
    return url


def strip_remote_credentials(remote: str) -> str:
    """A git remote as a capsule records it, in every form git accepts: URLs lose their
    password, token user and credential query parameters (a plain ssh user stays:
    `ssh://git@host/x`); the scp-like `user:pass@host:path` loses the password (`user@` is
    kept when it is a plain name, the user part goes entirely when it is not)."""
    if "://" in remote.split("@", 1)[0] or _URL_USERINFO.match(remote):
        scheme = remote.split("://", 1)[0].lower()
        return strip_url_credentials(remote, keep_user=scheme in ("ssh", "git+ssh"))
    match = _SCP_LIKE.match(remote)
    if match is not None:
        user = match.group("userinfo").split(":", 1)[0]
        prefix = f"{user}@" if _USER_NAME.match(user) else ""
        return f"{prefix}{match.group('host')}:{match.group('path')}"
    return remote


URL_PASSWORD = re.compile(rb"://([^\s/:@\"'<>`]{0,256}):([^\s/@\"'<>`]{1,256})@[A-Za-z0-9\[]")
"""`scheme://user:password@host` in text (group 2 is the password). It starts at `://`, a
literal the regex engine searches for at memory speed; any scheme counts."""


def url_passwords(text: str) -> list[str]:
    """The passwords of every `scheme://user:password@host` in `text`, placeholders left out."""
    found = []
    for match in URL_PASSWORD.finditer(text.encode("utf-8", "surrogateescape")):
        password = match.group(2).decode("utf-8", "replace")
        if not is_placeholder(password):
            found.append(password)
    return found
