"""What a dependency declaration asks for: index requirements, index options, an existing
hashed lock, and the local sources (paths, git, archives, the project) that are never looked
up on an index. One reader per format lives beside this module; requirements.txt is here."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement

from repro.capsule.manifest import LocalKind
from repro.credentials import strip_url_credentials
from repro.errors import ConfigError

# Options that say where packages come from: kept for the resolver and the installer.
INDEX_OPTIONS = (
    "--index-url",
    "--extra-index-url",
    "--find-links",
    "--no-index",
    "--trusted-host",
    "--pre",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "-i",
    "-f",
)
VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


@dataclass(frozen=True)
class LocalSource:
    """A dependency to build into a wheel at capture: never resolved from an index."""

    kind: LocalKind
    location: str
    """Absolute path (project, path) or URL (git, url) to fetch it from."""
    origin: str
    """As recorded: project-relative path, or the URL without credentials."""
    declared_in: str
    ref: str | None = None
    subdirectory: str | None = None
    name: str | None = None
    """The name the declaration gives it (egg=, Pipfile key, name @ ...), checked on build."""
    extras: tuple[str, ...] = ()
    editable: bool = False
    marker: str | None = None
    """An environment marker (`./winonly ; sys_platform == 'win32'`): built only where true."""


@dataclass(frozen=True)
class Declared:
    """Everything one declaration file (and the files it includes) asks for."""

    requirements: tuple[str, ...] = ()
    """PEP 508 lines for the resolver."""
    options: tuple[str, ...] = ()
    """Index options (--index-url ...), in order."""
    locked: str | None = None
    """An existing lock with hashes, kept as it is (Pipfile.lock, a hashed requirements.txt)."""
    local: tuple[LocalSource, ...] = ()
    python: str | None = None
    """major.minor the declaration pins, when it does."""
    files: tuple[str, ...] = ()
    """Project-relative files read (the declaration and what it includes)."""
    translated: dict[str, str] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def strip_credentials(url: str) -> str:
    """The URL as it may be recorded: no user:password, no token user, no query (where
    tokens travel)."""
    return urlunsplit(urlsplit(strip_url_credentials(url))._replace(query=""))


def read_text(path: Path) -> str:
    """UTF-8 (with or without a byte-order mark), or UTF-16 with one: what Windows'
    PowerShell 5 writes for `pip freeze > requirements.txt`, and pip reads."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def logical_lines(text: str) -> list[str]:
    """Lines with continuations joined and comments (' #' or a leading '#') removed."""
    joined = re.sub(r"\\\r?\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        out.append(re.split(r"\s+#", stripped, maxsplit=1)[0].strip())
    return out


def display(path: Path, project: Path) -> str:
    """A path as the user knows it: project-relative when inside the project."""
    try:
        return path.resolve().relative_to(project.resolve()).as_posix() or "."
    except ValueError:
        return str(path)


def split_vcs(url: str) -> tuple[str, str | None, str | None, str | None]:
    """git+URL[@ref][#egg=name&subdirectory=dir] -> (clone URL, ref, name, subdirectory)."""
    base, _, fragment = url.partition("#")
    params = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p)
    base = base.removeprefix("git+")
    ref = None
    parts = urlsplit(base)
    if "@" in parts.path:
        path, _, ref = parts.path.rpartition("@")
        base = urlunsplit(parts._replace(path=path))
    name = params.get("egg")
    return base, ref or None, name.split("[")[0] if name else None, params.get("subdirectory")


def local_from_reference(
    ref: str,
    base: Path,
    project: Path,
    declared_in: str,
    *,
    name: str | None = None,
    extras: tuple[str, ...] = (),
    editable: bool = False,
) -> LocalSource:
    """A path, file: URL, VCS URL or archive URL as a local source (refusing what we cannot
    build: hg, svn, bzr)."""
    if ref.startswith(VCS_PREFIXES):
        if not ref.startswith("git+"):
            raise ConfigError(
                f"{declared_in}: {ref.split('+')[0]} dependencies are not supported: {ref}",
                hint="use a git repository, or a path or wheel the project ships",
            )
        url, git_ref, egg, subdir = split_vcs(ref)
        return LocalSource(
            "git",
            url,
            strip_credentials(url),
            declared_in,
            ref=git_ref,
            subdirectory=subdir,
            name=name or egg,
            extras=extras,
            editable=editable,
        )
    if ref.startswith(("http://", "https://")):
        return LocalSource(
            "url", ref, strip_credentials(ref), declared_in, name=name, extras=extras
        )
    path_text = ref.removeprefix("file://") if ref.startswith("file://") else ref
    path = (base / path_text).resolve()
    kind: LocalKind = "project" if path == project.resolve() else "path"
    return LocalSource(
        kind,
        str(path),
        display(path, project),
        declared_in,
        name=name,
        extras=extras,
        editable=editable,
    )


def _is_reference(text: str) -> bool:
    """A requirement line that names a location rather than a project on an index
    (`name @ URL` is a named reference: the caller splits it first)."""
    return (
        text.startswith((".", "/", "~", "file:", *VCS_PREFIXES))
        or text.startswith(("http://", "https://"))
        or (text.endswith(ARCHIVE_SUFFIXES) and " @ " not in text and "@" not in text.split("/")[0])
    )


def _extras_of(ref: str) -> tuple[str, tuple[str, ...]]:
    """'./pkg[viz,io]' -> ('./pkg', ('viz', 'io'))."""
    match = re.match(r"^(.*?)\[([A-Za-z0-9_,.\s-]+)\]$", ref)
    if match and not ref.startswith(VCS_PREFIXES):
        return match.group(1), tuple(e.strip() for e in match.group(2).split(",") if e.strip())
    return ref, ()


def read_requirements_txt(
    path: Path, project: Path, *, _seen: frozenset[Path] = frozenset()
) -> Declared:
    """requirements.txt (or .in) with -r/-c includes, -e and path/VCS/URL lines split out."""
    rel = display(path, project)
    if path.resolve() in _seen:
        raise ConfigError(f"{rel}: includes itself (-r loop)")
    try:
        text = read_text(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{rel} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {rel}: {exc.strerror}") from None
    return read_requirements_text(text, rel, path.parent, project, _seen | {path.resolve()})


def read_requirements_text(
    text: str, rel: str, base: Path, project: Path, seen: frozenset[Path] = frozenset()
) -> Declared:
    """Requirements written as text (a file's, or environment.yml's pip: list), relative
    paths taken from `base`."""
    requirements: list[str] = []
    options: list[str] = []
    local: list[LocalSource] = []
    files = [rel]
    hashed: list[str] = []
    foreign: list[str] = []
    for lineno, line in enumerate(logical_lines(text), 1):
        if not line:
            continue
        where = f"{rel}:{lineno}"
        flag, _, value = line.partition(" ")
        value = value.strip()
        if flag.startswith("--") and "=" in flag:
            flag, _, value = flag.partition("=")
        elif flag[:2] in ("-r", "-c", "-e") and len(flag) > 2 and not value:
            flag, value = flag[:2], flag[2:]  # pip reads "-rother.txt" too
        if flag in ("-r", "--requirement", "-c", "--constraint"):
            if not value:
                raise ConfigError(f"{where}: {flag} needs a file name")
            included = (base / value).resolve()
            if not included.is_file():
                raise ConfigError(
                    f"{where}: included file not found: {value}",
                    hint="fix the path, or remove the line",
                )
            inner = read_requirements_txt(included, project, _seen=seen)
            if flag in ("-c", "--constraint"):
                # Constraints narrow versions but install nothing: kept for the resolver.
                requirements.append(f"-c {included}")
                files += inner.files
                continue
            requirements += inner.requirements
            options += [o for o in inner.options if o not in options]
            local += inner.local
            files += inner.files
            if inner.locked:
                hashed.append(inner.locked)
            continue
        if flag in ("-e", "--editable"):
            ref, extras = _extras_of(value)
            local.append(
                local_from_reference(ref, base, project, rel, extras=extras, editable=True)
            )
            continue
        if flag in ("--use-feature", "--use-deprecated"):
            continue  # pip's resolver switches of their day: nothing to lock
        if line.startswith(INDEX_OPTIONS):
            if line not in options:
                options.append(line)
            continue
        if line.startswith("-"):
            raise ConfigError(
                f"{where}: option not supported in a requirements file: {flag}",
                hint="remove it, or declare the dependency another way",
            )
        req_text = line.split(" --hash")[0].strip()
        if "@" in req_text and not _is_reference(req_text):
            name_part, _, ref_part = req_text.partition("@")
            ref = ref_part.split(";")[0].strip()
            if _is_reference(ref) or ref.startswith("file:"):
                req = _requirement(name_part.strip(), where)
                if _foreign_build_path(ref):
                    # `pip freeze` in a conda environment: the package came from a conda
                    # build folder of another machine; it is the index project of that name.
                    requirements.append(
                        req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")
                    )
                    foreign.append(req.name)
                    continue
                local.append(
                    local_from_reference(
                        ref, base, project, rel, name=req.name, extras=tuple(sorted(req.extras))
                    )
                )
                continue
        if _is_reference(req_text):
            ref, extras = _extras_of(req_text.split(";")[0].strip())
            source = local_from_reference(ref, base, project, rel, extras=extras)
            marker = req_text.split(";", 1)[1].strip() if ";" in req_text else None
            local.append(dataclasses.replace(source, marker=marker) if marker else source)
            continue
        _requirement(req_text, where)
        if "--hash=" in line:
            hashed.append(line)
        requirements.append(line)
    locked = None
    plain = [r for r in requirements if not r.startswith("-c ")]
    if plain and len(hashed) == len(plain) and all(_pinned(r) for r in plain):
        # A file that is a lock by itself is kept byte for byte; one assembled from includes
        # is written in the lock's layout.
        whole = len(files) == 1 and not local and len(plain) == len(requirements)
        locked = text if whole else "\n".join([*options, *_as_lock_lines(plain)]) + "\n"
    notes: tuple[str, ...] = ()
    if foreign:
        notes = (
            f"{rel}: {', '.join(foreign)} named a build folder of another machine (a conda "
            "`pip freeze`): locked from the index by name, unpinned",
        )
    return Declared(
        requirements=tuple(requirements),
        options=tuple(options),
        locked=locked,
        local=tuple(local),
        files=tuple(dict.fromkeys(files)),
        notes=notes,
    )


# Where conda builds packages: a `pip freeze` of a conda environment names these folders.
_BUILD_FOLDERS = (
    "/croot/",
    "/feedstock_root/",
    "/conda-bld/",
    "/tmp/build/",  # noqa: S108 - a path named in a file, never opened
    "/opt/conda/pkgs/",
)


def _foreign_build_path(ref: str) -> bool:
    if not ref.startswith("file://"):
        return False
    path = ref.removeprefix("file://")
    return any(marker in path for marker in _BUILD_FOLDERS) and not Path(path).exists()


def _pinned(line: str) -> bool:
    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==[^\s;,*]+", line))


def _as_lock_lines(lines: list[str]) -> list[str]:
    """Hashed requirement lines in the lock's layout (one --hash per continuation line)."""
    out = []
    for line in lines:
        head, *hashes = line.split(" --hash")
        parts = [head.strip()] + [f"    --hash{h.strip()}" for h in hashes]
        out.append(" \\\n".join(parts))
    return out


def _requirement(text: str, where: str) -> Requirement:
    try:
        return Requirement(text.split(" --hash")[0].strip())
    except InvalidRequirement as exc:
        raise ConfigError(
            f"{where}: not a valid requirement: {text[:120]} ({exc})".replace("\n", " "),
            hint="write it as NAME[extras] SPECIFIER ; MARKER (PEP 508)",
        ) from None


def check_requirements(lines: list[str], where: str) -> None:
    """[environment] packages: each must be a PEP 508 requirement for an index project."""
    for line in lines:
        if _is_reference(line) or "@" in line:
            raise ConfigError(
                f"{where}: {line!r} is not an index requirement",
                hint="declare paths, git repositories and URLs in a requirements file",
            )
        _requirement(line, where)
