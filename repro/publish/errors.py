"""Expected failures of publishing to and fetching from Zenodo, each with its hint and exit code.

None of these messages or hints ever holds the API token: messages are built from our own
words, URLs without credentials, and server text that went through `scrub` first.
"""

from __future__ import annotations

from pathlib import Path

from repro.errors import CapsuleIntegrityError, ReproError, ServiceUnavailableError

AUTH_HINT = (
    "set ZENODO_API_TOKEN (ZENODO_SANDBOX_API_TOKEN with --sandbox) to a personal access "
    "token with the deposit:write and deposit:actions scopes"
)


class ZenodoError(ReproError):
    """Zenodo refused or could not complete what was asked (a user-side problem: exit 1)."""

    default_hint = "fix what the message says and run the same command again: it resumes"


class ZenodoAuthError(ZenodoError):
    """No token, or Zenodo said 401/403: never retried."""

    default_hint = AUTH_HINT


class ZenodoRequestError(ZenodoError):
    """A 4xx answer other than auth, with the field errors Zenodo gave."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        field_errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.field_errors = field_errors or []


class ZenodoNotFoundError(ZenodoRequestError):
    default_hint = "check the DOI or record id, and that it belongs to this Zenodo (--zenodo-url)"


class ZenodoUnavailableError(ServiceUnavailableError):
    """Network errors and 5xx answers that persisted through the retries (exit 5)."""

    default_hint = "Zenodo (or the network) is not answering; run the same command again later"


class OutcomeUnknownError(ZenodoUnavailableError):
    """A non-idempotent request (POST) was sent but no clear answer came back: it may or may
    not have happened. Callers reconcile by reading state before doing anything again."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ZenodoRateLimitedError(ZenodoUnavailableError):
    default_hint = (
        "Zenodo's rate limit (100 requests/min, 5000/hour) was hit; wait a minute and run "
        "the same command again"
    )


class UnsafeLinkError(ZenodoError):
    """A server-supplied link points away from the configured API origin."""

    default_hint = (
        "the token is only ever sent to the configured Zenodo; check --zenodo-url, "
        "or report this answer of the server"
    )


class PublishValidationError(ZenodoError):
    """The metadata is not complete or not in the form Zenodo needs; checked before any request."""

    default_hint = (
        "fix [capsule] in repro.toml (or CITATION.cff) and capture again, "
        "see docs/publish.md for the fields Zenodo needs"
    )

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        self.problems = problems
        super().__init__(
            f"metadata not ready for Zenodo ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}): " + "; ".join(problems),
            hint,
        )


class ChecksumMismatchError(ZenodoError):
    """Zenodo's md5 or size of the uploaded capsule is not ours: nothing is published."""

    default_hint = (
        "the upload was damaged on the way; nothing was published and the draft is kept: "
        "run the same command again to upload it again"
    )


class MetadataMismatchError(ZenodoError):
    """Reading the deposition back did not give what was sent: nothing is published."""

    default_hint = (
        "someone or something changed the draft; check it on Zenodo, then run the same "
        "command again to send the metadata again"
    )


class PendingDraftError(ZenodoError):
    """A half-finished new-version draft that this capsule's journal does not know."""


class JournalConflictError(ZenodoError):
    """The journal next to the capsule belongs to another capsule, target or version chain."""


class PublishInProgressError(ZenodoError):
    """Another publisher holds the capsule's lock: two at once could make two records."""

    def __init__(self, message: str, *, capsule: Path) -> None:
        super().__init__(
            message,
            hint="wait for it to finish, then run the same command again: it resumes from "
            f"the journal next to {capsule.name}",
        )


class DraftGoneError(ZenodoError):
    """The deposition the journal names no longer exists (discarded on the website?)."""


class UnknownReferenceError(ZenodoError):
    """An argument that is neither a capsule file nor a Zenodo DOI or record URL."""

    default_hint = (
        "give a capsule file, a Zenodo DOI (10.5281/zenodo.N, doi:..., https://doi.org/...) "
        "or a record URL (https://zenodo.org/records/N)"
    )


class RecordContentError(ZenodoError):
    """The record has no capsule file, or several to choose from."""


class DownloadChecksumError(CapsuleIntegrityError):
    """The downloaded file is not the one Zenodo recorded (md5 or size): exit 4."""

    default_hint = "retry the download; if it happens again, do not trust this file"


class DownloadTooLargeError(DownloadChecksumError):
    """The server sent more than the record declares: cut off, nothing kept (exit 4)."""

    default_hint = "the server does not send what the record declares; do not trust this record"
