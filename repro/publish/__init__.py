"""Zenodo: publish a capsule with its own DOI (`repro publish`), fetch it back (`repro fetch`)."""

from __future__ import annotations

from repro.publish.api import ZenodoApi
from repro.publish.client import ZenodoClient
from repro.publish.fetch import FetchResult, fetch_capsule, resolve_capsule_argument
from repro.publish.flow import PublishOptions, PublishResult, publish
from repro.publish.receipt import Receipt
from repro.publish.target import Target, resolve_target

__all__ = [
    "FetchResult",
    "PublishOptions",
    "PublishResult",
    "Receipt",
    "Target",
    "ZenodoApi",
    "ZenodoClient",
    "fetch_capsule",
    "publish",
    "resolve_capsule_argument",
    "resolve_target",
]
