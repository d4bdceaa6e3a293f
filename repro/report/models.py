"""What each command prints with --json: one frozen model per command, schemas in schemas/.

The key names and shapes are the CLI contract (scripts parse them), so these models describe
what the commands have always printed, irregular shapes included (publish flattens its
receipt into the top level). `replay` and `diff` print `ReplayReport`
(repro.report.replay) and `CapsuleDiff` (repro.report.diff). Only the model modules (and
repro.sign's SignatureState) are imported at run time: the command modules build these from
core results without importing the pipelines that made them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Self

from pydantic import Field

from repro.capsule.manifest import Manifest
from repro.model_base import Model
from repro.report.attestation import FetchedAttestationOutput
from repro.sign import SignatureState

if TYPE_CHECKING:
    from repro.capture.pipeline import CaptureResult
    from repro.init import InitResult
    from repro.publish.fetch import FetchResult
    from repro.publish.flow import PublishResult
    from repro.sign import KeyInfo, SignatureStatus
    from repro.verify import VerifyReport


class ErrorOutput(Model):
    """Any command's --json output when it fails with an expected error (its exit code)."""

    ok: Literal[False]
    error: str
    """The one-line message (also printed on stderr)."""
    hint: str
    """What to do about it; empty when there is nothing to suggest."""
    exit_code: int
    """The process exit code: 1 error, 2 usage, 4 capsule invalid, 5 service unavailable."""
    kind: str
    """The error class, e.g. SignatureMismatchError."""
    details: list[str] = Field(default_factory=list)
    """When one error is many (capture's failed runs and notebooks): one entry each."""


# --- init --------------------------------------------------------------------------------


class DetectedFiles(Model):
    """What `repro init` found in the project."""

    folder: str | None
    """binder or .binder when configuration is read from that folder (root files ignored)."""
    requirements: str | None
    """The dependency file it will lock, by repo2docker's precedence."""
    project_file: str | None
    """setup.py or pyproject.toml of the project itself, when it will be installed."""
    used: list[str]
    """Every file the environment will be made from."""
    ignored: list[str]
    """Declarations present but not read, each with the reason."""
    python: str | None
    """The Python version a file pins (None: the running interpreter's)."""
    python_source: str
    apt: list[str]
    """Packages from apt.txt."""
    post_build: str | None
    notes: list[str]
    notebooks: list[str]
    data_dirs: list[str]
    scripts: list[str]
    """The files the run candidates run, best first (main.py, run.sh, Makefile, ...)."""


class InitCandidate(Model):
    """A command init found that could be a run."""

    command: str
    source: str
    """Where it was found: a script, the README's code blocks, the Makefile's default target."""
    score: int
    """Its rank: higher first."""
    chosen: bool


class InitRun(Model):
    """A run written to repro.toml."""

    name: str
    command: str
    source: str
    """Where the command came from: a candidate's source, --run, or typed in."""
    outputs: list[str]
    """The files it wrote when tried (empty: not tried, or it wrote none)."""
    tried: bool
    exit_code: int | None = None
    """The trial's exit code (None: not tried, or stopped at its timeout)."""
    duration_s: float | None = None
    removed: list[str] = Field(default_factory=list)
    """Project files the trial run deleted."""


class InitTrial(Model):
    """`repro init --try`: the chosen runs run once in the environment capture builds."""

    ok: bool
    seconds: float
    python: str | None
    """The interpreter the runs used (major.minor.micro)."""
    packages: int
    """Packages in the lock the environment was built from."""
    notes: list[str]


class InitEnvironmentGuess(Model):
    """How init filled in an environment that the project root does not declare."""

    subfolder_files: list[str]
    """Dependency files found below the root, best first; the first is proposed."""
    guessed_packages: list[str]
    """Distributions guessed from the imports (no dependency file anywhere)."""
    imported_in: dict[str, list[str]]
    """Guessed distribution -> files importing it."""
    unparsed: list[str]
    """Files that are not Python 3 (their imports were read line by line)."""
    conda_only: list[str] = Field(default_factory=list)
    """Conda-only packages of environment.yml proposed left out (conda_only = "skip")."""


class InitOutput(Model):
    """`repro init --json`."""

    ok: Literal[True]
    config: str
    """The repro.toml written."""
    detected: DetectedFiles
    candidates: list[InitCandidate] = Field(default_factory=list)
    """Run candidates, best first."""
    runs: list[InitRun] = Field(default_factory=list)
    environment: InitEnvironmentGuess | None = None
    trial: InitTrial | None = None
    """With --try."""
    questions: list[str] = Field(default_factory=list)
    """What the author must still answer (QUESTION lines in repro.toml)."""

    @classmethod
    def build(cls, result: InitResult) -> Self:
        found = result.detected
        env = found.environment
        detected = DetectedFiles(
            folder=env.folder,
            requirements=env.dependency_file,
            project_file=env.project_file,
            used=env.used,
            ignored=env.ignored,
            python=found.python,
            python_source=env.python.source,
            apt=env.apt,
            post_build=env.post_build,
            notes=env.notes,
            notebooks=found.notebooks,
            data_dirs=found.data_dirs,
            scripts=found.scripts,
        )
        chosen = {r.command for r in result.runs}
        candidates = [
            InitCandidate(
                command=c.command, source=c.source, score=c.score, chosen=c.command in chosen
            )
            for c in found.candidates
        ]
        tried = {t.name: t for t in result.trial.runs} if result.trial else {}
        runs = [
            InitRun(
                name=r.name,
                command=r.command,
                source=r.source,
                outputs=list(r.outputs),
                tried=r.name in tried,
                exit_code=tried[r.name].exit_code if r.name in tried else None,
                duration_s=tried[r.name].duration_s if r.name in tried else None,
                removed=list(tried[r.name].removed) if r.name in tried else [],
            )
            for r in result.runs
        ]
        guess = found.guess
        environment = (
            InitEnvironmentGuess(
                subfolder_files=found.subfolder_files,
                guessed_packages=guess.packages if guess else [],
                imported_in=guess.where if guess else {},
                unparsed=guess.unparsed if guess else [],
                conda_only=found.conda_only,
            )
            if found.subfolder_files or (guess and guess.packages) or found.conda_only
            else None
        )
        trial = (
            InitTrial(
                ok=result.trial.ok,
                seconds=round(result.trial.seconds, 3),
                python=result.trial.python,
                packages=result.trial.packages,
                notes=list(result.trial.notes),
            )
            if result.trial
            else None
        )
        return cls(
            ok=True,
            config=str(result.config),
            detected=detected,
            candidates=candidates,
            runs=runs,
            environment=environment,
            trial=trial,
            questions=result.questions,
        )


# --- capture -----------------------------------------------------------------------------


class CapturedRun(Model):
    """One run point recorded at capture."""

    run: str
    point: str
    """The sweep point's id (`_` for a run without a sweep)."""
    executed: bool
    """False with --no-run: the outputs were taken from the project as they were."""
    outputs: list[str]
    """The expected outputs' paths, relative to the project."""


class CapturedNotebook(Model):
    """One notebook recorded at capture."""

    path: str
    executed: bool
    code_cells: int
    kernel: str
    """Kernel name."""
    language: str


class CaptureOutput(Model):
    """`repro capture --json`."""

    ok: Literal[True]
    capsule: str
    """The capsule file written."""
    capsule_id: str
    """sha256 of the canonical repro.json: the capsule's identity."""
    archive_sha256: str
    archive_size: int
    files: int
    """Number of payload files."""
    payload_size: int
    lock_source: str
    """The dependency file the lock came from (`none`, `freeze`, or a file name)."""
    packages: int
    """Number of locked packages."""
    results: list[CapturedRun]
    notebooks: list[CapturedNotebook]
    excluded: list[str]
    """Project paths left out, each with the reason."""
    notes: list[str]
    timings: dict[str, float]
    """Seconds spent per phase (list, hash, scan, lock, runs, write, ...)."""
    signed_by: str | None
    """Key id of the signature, when the capsule was signed."""

    @classmethod
    def build(cls, result: CaptureResult) -> Self:
        m = result.manifest
        return cls(
            ok=True,
            capsule=str(result.capsule.path),
            capsule_id=result.capsule.capsule_id,
            archive_sha256=result.capsule.sha256,
            archive_size=result.capsule.size,
            files=len(m.files),
            payload_size=m.payload_size,
            lock_source=m.environment.lock_source,
            packages=len(m.environment.packages),
            results=[
                CapturedRun(
                    run=r.run,
                    point=r.point_id,
                    executed=r.executed,
                    outputs=[o.path for o in r.outputs],
                )
                for r in m.results
            ],
            notebooks=[
                CapturedNotebook(
                    path=nb.path,
                    executed=nb.executed,
                    code_cells=nb.code_cells,
                    kernel=nb.kernel.name,
                    language=nb.kernel.language,
                )
                for nb in m.notebook_results
            ],
            excluded=m.excluded,
            notes=m.notes,
            timings=result.timings,
            signed_by=result.signed_by,
        )


# --- verify / inspect / fetch ------------------------------------------------------------


class SignatureOutput(Model):
    """How the capsule's signature checked out."""

    state: SignatureState
    """trusted (a key in your trust store), unknown (valid, by a key you do not trust) or
    unsigned."""
    keyid: str | None
    """sha256 of the raw Ed25519 public key."""
    fingerprint: str | None
    """The key id as people compare it (`SHA256:abcd ...`)."""
    trusted_name: str | None
    """The key's name in the local trust store, when trusted."""

    @classmethod
    def build(cls, status: SignatureStatus) -> Self:
        return cls(
            state=status.state,
            keyid=status.keyid,
            fingerprint=status.fingerprint,
            trusted_name=status.name,
        )


class VerifyOutput(Model):
    """`repro verify --json` (every checksum matched: failures print ErrorOutput)."""

    ok: Literal[True]
    capsule: str
    capsule_id: str
    archive_sha256: str
    archive_size: int
    format: str
    """The capsule format version, e.g. repro-capsule/1."""
    files: int
    payload_size: int
    signature: SignatureOutput

    @classmethod
    def build(cls, report: VerifyReport) -> Self:
        c = report.capsule
        return cls(
            ok=True,
            capsule=str(c.path),
            capsule_id=c.capsule_id,
            archive_sha256=c.archive_sha256,
            archive_size=c.archive_size,
            format=c.manifest.format,
            files=len(c.manifest.files),
            payload_size=c.manifest.payload_size,
            signature=SignatureOutput.build(report.signature),
        )


class InspectOutput(Model):
    """`repro inspect --json`: the whole manifest, after the same checks as verify."""

    ok: Literal[True]
    capsule_id: str
    archive_size: int
    signature: SignatureOutput
    manifest: Manifest
    """repro.json as it is in the capsule (schema: manifest.schema.json)."""

    @classmethod
    def build(cls, report: VerifyReport) -> Self:
        c = report.capsule
        return cls(
            ok=True,
            capsule_id=c.capsule_id,
            archive_size=c.archive_size,
            signature=SignatureOutput.build(report.signature),
            manifest=c.manifest,
        )


class FetchOutput(Model):
    """`repro fetch --json`."""

    ok: Literal[True]
    capsule: str
    """Where the downloaded capsule is."""
    record_id: int
    """The Zenodo record it came from."""
    doi: str | None
    md5: str
    """Zenodo's checksum of the file, which the download matched."""
    size: int
    cached: bool
    """Whether the download was already in the cache."""
    warnings: list[str]
    verify: VerifyOutput
    """The verification of the downloaded capsule."""
    concept_doi: str | None = None
    """The concept DOI given, when it was resolved to `doi` (its latest version)."""
    attestations: list[FetchedAttestationOutput] | None = None
    """With --attestations: the replay attestations linked to the record."""
    attestation_summary: str | None = None
    """With --attestations: what the verified ones say together."""

    @classmethod
    def build(cls, result: FetchResult, report: VerifyReport, with_attestations: bool) -> Self:
        from repro.attestation.check import summarise

        good = [f.checked for f in result.attestations if f.checked is not None]
        summaries = summarise(good)
        return cls(
            ok=True,
            capsule=str(result.path),
            record_id=result.record_id,
            doi=result.doi,
            md5=result.md5,
            size=result.size,
            cached=result.cached,
            warnings=result.warnings,
            verify=VerifyOutput.build(report),
            concept_doi=result.concept_doi,
            attestations=[FetchedAttestationOutput.build(f) for f in result.attestations]
            if with_attestations
            else None,
            attestation_summary=summaries[0].sentence() if summaries else None,
        )


# --- keys --------------------------------------------------------------------------------


class KeyGenerateOutput(Model):
    """`repro keys generate --json`."""

    ok: Literal[True]
    name: str
    keyid: str
    path: str
    """The private key file (the public one is beside it, .pub)."""

    @classmethod
    def build(cls, info: KeyInfo) -> Self:
        return cls(ok=True, name=info.name, keyid=info.keyid, path=str(info.path))


class OwnKey(Model):
    """One of your signing keys."""

    name: str
    keyid: str
    encrypted: bool
    """The private key is protected by a passphrase."""


class TrustedKey(Model):
    """A key in the trust store."""

    keyid: str
    name: str | None


class KeyListOutput(Model):
    """`repro keys list --json`."""

    ok: Literal[True]
    keys: list[OwnKey]
    """Your signing keys, by name."""
    trusted: list[TrustedKey]
    """The keys you trust, by key id."""

    @classmethod
    def build(cls, own: list[KeyInfo], trusted: dict[str, dict[str, str]]) -> Self:
        return cls(
            ok=True,
            keys=[OwnKey(name=k.name, keyid=k.keyid, encrypted=k.encrypted) for k in own],
            trusted=[TrustedKey(keyid=k, name=v.get("name")) for k, v in sorted(trusted.items())],
        )


class KeyExportOutput(Model):
    """`repro keys export --json`."""

    ok: Literal[True]
    name: str
    keyid: str
    fingerprint: str
    public_key_pem: str
    """The public key, PEM (what `repro keys export` prints without --json)."""


class KeyTrustOutput(Model):
    """`repro keys trust --json`."""

    ok: Literal[True]
    keyid: str
    name: str
    """The name it is trusted under."""


class KeyUntrustOutput(Model):
    """`repro keys untrust --json`."""

    ok: Literal[True]
    removed: list[str]
    """Key ids removed from the trust store."""


# --- publish -----------------------------------------------------------------------------


class PublishOutput(Model):
    """`repro publish --json`: the receipt's fields (repro.publish.receipt.Receipt, kept equal by
    a test) at the top level, then where the receipt and journal are."""

    ok: Literal[True]
    state: Literal["draft", "published"]
    doi: str
    """The record's DOI (reserved, not yet registered, while a draft)."""
    concept_doi: str | None
    """The DOI of all versions (known once published)."""
    record_url: str
    draft_url: str | None
    deposition_id: int
    file_name: str
    """The capsule's name on Zenodo."""
    md5: str
    sha256: str
    size: int
    capsule: str
    """The DOI-stamped capsule written next to the original."""
    capsule_id: str
    target: str
    """production, sandbox or custom."""
    zenodo_url: str
    new_version_of: str | None
    time: str
    receipt: str
    """The receipt file (CAPSULE.zenodo.json)."""
    journal: str
    """The journal that lets an interrupted publish resume."""
    resumed: bool
    """A journal from an earlier run was picked up."""
    already_done: bool
    """Nothing was left to do (published before)."""

    @classmethod
    def build(cls, result: PublishResult) -> Self:
        return cls(
            ok=True,
            **result.receipt.model_dump(),
            receipt=str(result.receipt_path),
            journal=str(result.journal_path),
            resumed=result.resumed,
            already_done=result.already_done,
        )
