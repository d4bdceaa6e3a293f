"""The base every boundary model shares: the frozen `Model`, `Sha256`, `SweepValue`, literals.

Three contracts are built on it, each in its own module: what repro.toml says
(`repro.config.models`), the capsule manifest (`repro.capsule.manifest`, which embeds
config models) and the replay report (`repro.report.replay`, with the comparators'
verdicts from `repro.compare.verdict`). This module imports nothing of repro, so any of
them, and anything else, may import it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="Lower-case hex sha256.")]
SweepValue = StrictBool | StrictInt | StrictFloat | StrictStr


class Model(BaseModel):
    """Frozen, strict base: unknown keys are an error, parsed once at the edge."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, defer_build=True
    )


CompareMethod = Literal["exact", "text", "numeric", "image"]
"""How an output is compared: a config's CompareRule chooses it, a verdict reports it."""


# --- limits every path obeys -------------------------------------------------------------
# What Linux filesystems accept (PATH_MAX, NAME_MAX): a longer path could not be unpacked, and
# bounding it bounds every check that walks a path.
PATH_MAX = 4095
"""Bytes in a path (Linux PATH_MAX is 4096 with the terminating NUL)."""
NAME_MAX = 255
"""Bytes in one path component."""


def check_path_limits(path: str, what: str) -> str:
    """`path` when it fits what a filesystem accepts (ValueError otherwise): at most PATH_MAX
    bytes, components of at most NAME_MAX bytes, valid UTF-8 (no lone surrogates)."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8") from None
    if size > PATH_MAX:
        raise ValueError(f"{what} is {size} bytes long; filesystems accept {PATH_MAX}")
    if size > NAME_MAX and any(len(p.encode("utf-8")) > NAME_MAX for p in path.split("/")):
        raise ValueError(f"{what} has a component longer than {NAME_MAX} bytes")
    return path


def safe_relative(path: str, what: str) -> str:
    """`path` when it is a plain relative POSIX path (no absolute, empty, . or .. parts)."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} {path!r} must be a plain relative path inside the project")
    return check_path_limits(path, what)


# --- fields that reach generated text (Dockerfile, batch scripts) ------------------------
# Each is checked against a strict pattern wherever it is read (repro.toml and repro.json),
# so no value can add a line or an option to what repro renders.

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    # The Docker reference grammar (github.com/distribution/reference, regexp.go):
    # [domain[:port]/]path[:tag][@digest]
    rf"(?:(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?"
    rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
IMAGE_NAME_MAX = 255
"""Docker's limit on the name part (NameTotalLengthMax)."""


def check_image_reference(value: str) -> str:
    """A container image reference as Docker's grammar defines it (python:3.11-slim,
    ghcr.io/org/img:tag@sha256:...); anything else could add Dockerfile instructions."""
    name = value.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if not IMAGE_REFERENCE.fullmatch(value) or len(name) > IMAGE_NAME_MAX:
        raise ValueError(
            f"base image {value!r} is not a container image reference (e.g. python:3.11-slim)"
        )
    return value


ImageReference = Annotated[str, AfterValidator(check_image_reference)]

_SLURM_WORD = r"[A-Za-z0-9][A-Za-z0-9_.+@%:=-]*"
SCHEDULER_NAME = re.compile(rf"{_SLURM_WORD}(?:,{_SLURM_WORD})*")
"""A partition, account or QOS (a comma-separated list for partitions): letters, digits and
_ . + @ % : = -, not starting with '-'. No space, quote, '#' or newline, so a value stays
one option of one #SBATCH / #PBS / #$ line."""
CONSTRAINT = re.compile(r"[A-Za-z0-9_.\[(!][A-Za-z0-9_.+@%:=&|,*!\[\]()-]*")
"""A Slurm feature expression (intel&gpu, [rack1|rack2], knl*2): names and & | , * ! [ ] ( )."""
SCHEDULER_VALUE_MAX = 1024


def _scheduler(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > SCHEDULER_VALUE_MAX or not pattern.fullmatch(value):
            raise ValueError(
                f"{what} {value!r} may hold only letters, digits and _ . + @ % : = - "
                "(no spaces, quotes or line breaks)"
            )
        return value

    return AfterValidator(check)


SchedulerName = Annotated[str, _scheduler(SCHEDULER_NAME, "scheduler name")]
SlurmConstraint = Annotated[str, _scheduler(CONSTRAINT, "constraint")]

APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9_.+:~\-]+)?")
"""A Debian package (policy 5.6.1: lower-case letters, digits, + - .), optionally :arch and
=version (apt.txt's forms)."""


def check_apt_package(value: str) -> str:
    if len(value) > NAME_MAX or not APT_PACKAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Debian package name (e.g. libgsl-dev)")
    return value


AptPackage = Annotated[str, AfterValidator(check_apt_package)]

URL_SCHEMES = ("https", "http")
"""Remote data is fetched over HTTP(S) only; its sha256 is what makes plain http safe."""
URL_MAX = 8192


def check_data_url(value: str) -> str:
    """An http(s) URL with a host, no whitespace or control characters."""
    problem = ValueError(f"remote data URL {value!r} must be an http:// or https:// URL")
    if len(value) > URL_MAX or any(
        ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\\" for c in value
    ):
        raise problem
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise problem from None
    if parts.scheme not in URL_SCHEMES or not host:
        raise problem
    return value


DataUrl = Annotated[str, AfterValidator(check_data_url)]
