"""The ReproError hierarchy: every expected failure, with its exit code and a hint."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar


class ExitCode:
    """The CLI contract's exit codes (DESIGN.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_REPRODUCED = 3
    INVALID_CAPSULE = 4
    SERVICE_UNAVAILABLE = 5


class ReproError(Exception):
    """An expected failure: a one-line message, a hint, and the exit code it maps to."""

    exit_code: ClassVar[int] = ExitCode.ERROR
    default_hint: ClassVar[str] = ""

    def __init__(
        self, message: str, hint: str | None = None, *, details: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details = tuple(details)
        """More lines under the message, when one failure is many (capture's failed runs)."""


# --- usage and configuration -------------------------------------------------------------


class UsageError(ReproError):
    exit_code = ExitCode.USAGE


class ProjectNotFoundError(ReproError):
    default_hint = "pass an existing project folder"


class DestinationNotFoundError(UsageError):
    """The folder a file is to be written into does not exist (checked before any work)."""


class ConfigError(ReproError):
    default_hint = "fix repro.toml (see README.md, 'repro.toml reference')"


class ConfigExistsError(ReproError):
    default_hint = "edit the existing file, or delete it and run repro init again"


class NoRunToTryError(UsageError):
    """`repro init --try` with no run found or chosen."""

    default_hint = "name the command: repro init --try --run 'python analyse.py'"


# --- capture -----------------------------------------------------------------------------


class ProjectFileError(ReproError):
    """A project file that cannot go into a capsule as it is."""

    default_hint = "add it to .reproignore, or fix it, and capture again"


class UnsafeSymlinkError(ProjectFileError):
    default_hint = (
        "copy the target into the project, or add the link to .reproignore; "
        "links leaving the project would not exist on the replaying machine"
    )


class FileChangedError(ProjectFileError):
    default_hint = "something is writing to the project during capture; wait for it and retry"

    def __init__(
        self, message: str, hint: str | None = None, *, path: Path | str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.path = Path(path) if path is not None else None
        """The file that changed, when one did (capture forgets its stat-cache entry)."""


class FileTooLargeError(ProjectFileError):
    default_hint = (
        "publish the file elsewhere and declare it as remote data "
        "([[data]] url = ..., sha256 = ...), or raise [capture] max_file_size"
    )


class CapsuleTooLargeError(ProjectFileError):
    default_hint = (
        "leave files out with .reproignore, or pack many small files into one archive "
        "(tar, zip) in the project, and capture again"
    )


class ResolverError(ReproError):
    default_hint = (
        "check the requirement names and versions, or pass --freeze to lock what is installed"
    )


class EnvironmentBuildError(ReproError):
    default_hint = "check the lock file, and that the Python version it needs is installed"


class RunFailedError(ReproError):
    default_hint = "run the command by hand in the project to debug it, or capture with --no-run"


class RunTimeoutError(RunFailedError):
    default_hint = "raise the run's timeout in repro.toml ([[runs]] timeout = SECONDS)"


class OutputMissingError(RunFailedError):
    default_hint = "check the run's outputs in repro.toml match the paths the command writes"


class TrialFailedError(RunFailedError):
    """A run `repro init --try` tried failed; `details` holds the tail of its output."""

    default_hint = (
        "fix the command (or pass another with --run) and try again, or run repro init "
        "without --try to write repro.toml with the outputs left to fill in"
    )


class NotebookError(ReproError):
    """A declared notebook that cannot be read, validated or run as it is."""

    default_hint = "open it in Jupyter, fix it and save it again, then capture again"


class NotebookFailedError(RunFailedError):
    default_hint = (
        "fix the cell; tag it raises-exception if the error is the point, or capture with "
        "--no-run to keep the outputs saved in the notebook as the expectation"
    )


class CaptureRunsFailedError(RunFailedError):
    """Runs or notebooks failed at capture: every failure is in `details`, one block each."""

    default_hint = (
        "fix them and capture again (run a command by hand in the project to debug it); a "
        "cell that raises on purpose: tag it raises-exception, or the notebook's "
        "[[notebooks]] allow_errors = true"
    )


class DataChecksumError(ReproError):
    default_hint = "the remote file changed or the sha256 in repro.toml is wrong; check both"


class OutputWriteError(ReproError):
    default_hint = "check the destination directory exists, is writable and has free space"


# --- capsules ----------------------------------------------------------------------------


class CapsuleError(ReproError):
    """The capsule is invalid: tampered, malformed, unsafe or of an unknown format."""

    exit_code = ExitCode.INVALID_CAPSULE
    default_hint = "do not trust this capsule; ask its author for a fresh copy"


class CapsuleIntegrityError(CapsuleError):
    pass


class UnsafeArchiveMemberError(CapsuleError):
    pass


class MalformedCapsuleError(CapsuleError):
    pass


class UnsupportedFormatError(CapsuleError):
    default_hint = "upgrade repro: pip install --upgrade repro-capsule"


class SignatureError(CapsuleError):
    """The signature is malformed, does not verify, or covers another manifest."""


class UntrustedCapsuleError(CapsuleError):
    """A --require-signed / --require-trusted policy is not met."""

    default_hint = "ask the author for their public key, then: repro keys trust KEY.pub"


class SandboxUnavailableError(UntrustedCapsuleError):
    """No sandbox works here, and the capsule is not trusted enough to run without one."""

    default_hint = "replay with --target docker, install bubblewrap, or pass --no-sandbox"


class DockerfileMismatchError(CapsuleIntegrityError):
    """The capsule's Dockerfile is not the one repro generates from its declarations."""

    default_hint = (
        "do not build it: a capsule's image is built only from what repro generates; "
        "ask the author to capture it again with this version of repro"
    )


class CapsuleNotFoundError(ReproError):
    default_hint = "check the path to the capsule file"


# --- attestations ------------------------------------------------------------------------


class AttestationError(CapsuleError):
    """An attestation that is malformed, of another type, or whose signature does not hold."""

    default_hint = (
        "do not rely on this attestation; ask whoever replayed the capsule for a fresh copy "
        "(repro replay CAPSULE --attest)"
    )


class AttestationNotFoundError(ReproError):
    default_hint = "check the path to the attestation file (written by repro replay --attest)"


class AttestationSubjectError(AttestationError):
    """The attestation is about another capsule than the one given."""

    default_hint = (
        "check that --capsule names the capsule that was replayed (repro verify CAPSULE "
        "prints its id)"
    )


class UntrustedAttestationError(AttestationError):
    """--require-trusted and the attestation is signed by a key not in the trust store."""

    default_hint = "ask the replayer for their public key, then: repro keys trust KEY.pub"


class ConceptDoiRefusedError(UsageError):
    """--version-doi-only and the DOI given is a concept DOI (all versions)."""


# --- keys --------------------------------------------------------------------------------


class SigningKeyError(ReproError):
    default_hint = "create a key with: repro keys generate (or pass --no-sign)"


class KeyPassphraseError(SigningKeyError):
    default_hint = "set REPRO_KEY_PASSPHRASE, or run interactively to be asked"


class SecretFoundError(ReproError):
    default_hint = "remove the secret (and rotate it), or if it is not one: --allow-secret PATH"


# --- services ----------------------------------------------------------------------------


class ServiceUnavailableError(ReproError):
    exit_code = ExitCode.SERVICE_UNAVAILABLE


class NetworkError(ServiceUnavailableError):
    default_hint = "check the network connection and the URL, then retry"


class GpuUnavailableError(ServiceUnavailableError):
    """A run needs GPUs the replay's target does not have."""


class SharedFilesystemError(ServiceUnavailableError):
    """A cluster task does not see the working directory the submitting host wrote."""


class AptPackagesMissingError(ServiceUnavailableError):
    """The study needs Debian packages (apt.txt) this machine does not have."""


class ImageBuildError(EnvironmentBuildError):
    """The environment image's build failed at a step."""

    def __init__(self, message: str, hint: str | None = None, *, step: str = "") -> None:
        super().__init__(message, hint=hint)
        self.step = step


# --- this machine ------------------------------------------------------------------------


class MachineFaultError(ReproError):
    """This machine could not do what was asked: a full disk, a read-only file system."""

    default_hint = "free some space or choose a writable folder, then run the command again"

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str) -> MachineFaultError | None:
        """`exc` as one line saying what was being done; None when it is not a fault of the
        machine (a bug, or a condition the caller handles)."""
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return cls(
                f"no space left on the device while {doing}{where}",
                hint="free some space (df -h shows where), or use a folder on another disk"
                " (TMPDIR, --workdir, REPRO_CACHE_DIR)",
            )
        if exc.errno == errno.EROFS:
            return cls(
                f"read-only file system while {doing}{where}",
                hint="choose a writable folder (TMPDIR, --workdir, -o, REPRO_CACHE_DIR)",
            )
        return None


class WorkerDiedError(MachineFaultError):
    """A worker process of repro's own ended without an answer: killed by the system."""

    default_hint = (
        "the kernel's OOM killer is the usual cause (`dmesg | tail` says): free some memory, "
        "then run the command again"
    )
