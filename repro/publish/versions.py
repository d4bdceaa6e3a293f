"""New versions on Zenodo: finding a concept's pending draft, recognising the wedge, the cleanup.

zenodo.org answers a published deposition's `links.latest_draft` with the deposition itself,
even while a new-version draft of its concept is pending, so that link cannot find the
draft a lost `newversion` answer made. The user's depositions can: the concept's drafts
(`GET /api/deposit/depositions?q=conceptrecid:N&all_versions=true&status=draft`), read
again while the search index catches up.
"""

from __future__ import annotations

import re

from repro.publish.api import ZenodoApi
from repro.publish.errors import ZenodoRequestError
from repro.publish.models import Deposition
from repro.publish.target import Target


def draft_id(link: str | None) -> int | None:
    match = re.search(r"/depositions/(\d+)", link or "")
    return int(match.group(1)) if match else None


def is_wedge(exc: ZenodoRequestError) -> bool:
    """Zenodo's 400 when a pending new-version draft still holds files (ZENODO.md)."""
    texts = [exc.message, *(m for _f, m in exc.field_errors)]
    return any("remove all files" in t.lower() for t in texts)


def cleanup_hint(target: Target, draft: int | None) -> str:
    if draft is None:
        return (
            f"find the draft among your uploads at {target.site_url}/me/uploads, discard it, "
            "then run this command again"
        )
    return (
        f"discard it at {target.site_url}/deposit/{draft}, or with: curl -X POST "
        f'-H "Authorization: Bearer ${target.token_variable}" '
        f"{target.api_url}/deposit/depositions/{draft}/actions/discard "
        "-- then run this command again"
    )


def pending_draft(api: ZenodoApi, previous: Deposition, wait: float) -> int | None:
    """The oldest pending draft of `previous`'s concept other than itself, looking for up to
    `wait` seconds; without a concept id, the one `links.latest_draft` names, if another."""
    if previous.conceptrecid is None:
        draft = draft_id(previous.links.latest_draft)
        return draft if draft is not None and draft != previous.id else None
    drafts = [d.id for d in api.version_drafts(previous.conceptrecid, wait=wait)]
    drafts = [d for d in drafts if d != previous.id]
    return min(drafts) if drafts else None
