"""Pipfile and Pipfile.lock as pipenv reads them: packages and dev-packages (repo2docker
installs both), extras, markers, [requires] python_version, [[source]], path and git entries."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from repro.env.requirements import Declared, LocalSource, display, local_from_reference, read_text
from repro.errors import ConfigError

# Pipfile keys that pipenv turns into environment markers ("sys_platform = \"== 'linux'\"").
MARKER_KEYS = (
    "os_name",
    "sys_platform",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_version",
    "python_full_version",
    "implementation_name",
    "implementation_version",
)
SECTIONS = ("packages", "dev-packages")
LOCK_SECTIONS = ("default", "develop")


def _python_of(requires: Any, where: str) -> str | None:
    if not isinstance(requires, dict):
        return None
    version = requires.get("python_version") or requires.get("python_full_version")
    if version is None:
        return None
    parts = str(version).strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ConfigError(
            f"{where}: [requires] python_version {version!r} is not a version like 3.10",
            hint='write python_version = "3.10"',
        )
    return ".".join(parts[:2])


def _markers(spec: dict[str, Any]) -> str:
    parts = []
    if isinstance(spec.get("markers"), str) and spec["markers"].strip():
        parts.append(f"({spec['markers'].strip()})")
    for key in MARKER_KEYS:
        value = spec.get(key)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            if value == "*":
                continue
            op = re.match(r"^(===|==|!=|<=|>=|~=|<|>)\s*(.*)$", value)
            if op is None:
                parts.append(f"{key} == {value!r}")
            else:  # pipenv writes `"== 'linux'"` and `">=3.8"`: PEP 508 wants the value quoted
                operand = op.group(2).strip()
                quoted = operand if operand[:1] in ("'", '"') else repr(operand)
                parts.append(f"{key} {op.group(1)} {quoted}")
    return " and ".join(parts)


def _extras(spec: dict[str, Any], where: str) -> tuple[str, ...]:
    extras = spec.get("extras", [])
    if not isinstance(extras, list) or not all(isinstance(e, str) for e in extras):
        raise ConfigError(f"{where}: extras must be a list of names")
    return tuple(extras)


def _local(
    name: str, spec: dict[str, Any], base: Path, project: Path, rel: str
) -> LocalSource | None:
    """A path, git or file entry as a local source; None for an index entry."""
    where = f"{rel}: {name}"
    extras = _extras(spec, where)
    editable = bool(spec.get("editable"))
    if "path" in spec:
        return local_from_reference(
            str(spec["path"]), base, project, rel, name=name, extras=extras, editable=editable
        )
    if "git" in spec:
        url = str(spec["git"])
        ref = spec.get("ref")
        source = local_from_reference(
            url if url.startswith("git+") else f"git+{url}",
            base,
            project,
            rel,
            name=name,
            extras=extras,
            editable=editable,
        )
        return LocalSource(
            source.kind,
            source.location,
            source.origin,
            rel,
            ref=str(ref) if ref else source.ref,
            subdirectory=spec.get("subdirectory") or source.subdirectory,
            name=name,
            extras=extras,
            editable=editable,
        )
    if "file" in spec:
        return local_from_reference(str(spec["file"]), base, project, rel, name=name)
    for vcs in ("hg", "svn", "bzr"):
        if vcs in spec:
            raise ConfigError(
                f"{where}: {vcs} dependencies are not supported",
                hint="use a git repository, or a path or wheel the project ships",
            )
    return None


def _index_options(sources: Any, where: str) -> tuple[str, ...]:
    """[[source]] blocks: the first is the index, later ones are extra indexes."""
    if sources is None:
        return ()
    if not isinstance(sources, list):
        raise ConfigError(f"{where}: [[source]] must be a list of tables")
    options = []
    for i, source in enumerate(sources):
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}: [[source]] #{i + 1} has no url")
        if url.rstrip("/") in ("https://pypi.org/simple", "https://pypi.python.org/simple"):
            continue  # the default index: leave the user's configured index (or mirror) alone
        options.append(f"--index-url {url}" if i == 0 else f"--extra-index-url {url}")
    return tuple(options)


def read_pipfile(path: Path, project: Path) -> Declared:
    rel = display(path, project)
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{rel} is not valid TOML: {exc}", hint="fix the file (pipenv reads it as TOML)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{rel} is not UTF-8 text", hint="save it as UTF-8") from None
    requirements: list[str] = []
    local: list[LocalSource] = []
    seen: dict[str, str] = {}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{rel}: [{section}] must be a table of packages")
        for name, spec in table.items():
            where = f"{rel}: [{section}] {name}"
            if isinstance(spec, str):
                spec = {"version": spec}
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: expected a version string or a table")
            source = _local(name, spec, path.parent, project, rel)
            if source is not None:
                local.append(source)
                continue
            version = str(spec.get("version", "*")).strip()
            if version not in ("*", "") and not re.match(r"^(==|>=|<=|!=|~=|===|>|<)", version):
                # "1.2" would become the project "six1.2", "-toolbelt" another project
                raise ConfigError(
                    f"{where}: version {version!r} is not a version specifier",
                    hint='write it as "*", "==1.2" or ">=1.2"',
                )
            extras = _extras(spec, where)
            markers = _markers(spec)
            head = name + (f"[{','.join(extras)}]" if extras else "")
            line = head + ("" if version in ("*", "") else version)
            line += f" ; {markers}" if markers else ""
            try:
                Requirement(line)
            except InvalidRequirement as exc:
                raise ConfigError(
                    f"{where}: makes no valid requirement ({line!r}: {exc})".replace("\n", " "),
                    hint="check its version and markers",
                ) from None
            if name.lower() in seen and seen[name.lower()] != line:
                raise ConfigError(
                    f"{rel}: {name} is declared twice, differently ({seen[name.lower()]!r} and "
                    f"{line!r})",
                    hint="keep one entry, in [packages] or [dev-packages]",
                )
            if name.lower() not in seen:
                seen[name.lower()] = line
                requirements.append(line)
    return Declared(
        requirements=tuple(requirements),
        options=_index_options(data.get("source"), rel),
        local=tuple(local),
        python=_python_of(data.get("requires"), rel),
        files=(rel,),
    )


def read_pipfile_lock(path: Path, project: Path) -> Declared:
    """Pipfile.lock's default and develop sections: index entries keep their hashes (the lock
    is kept as it is); path and git entries are local sources."""
    rel = display(path, project)
    try:
        data = json.loads(read_text(path))
    except UnicodeDecodeError:
        raise ConfigError(f"{rel} is not UTF-8 text", hint="save it as UTF-8") from None
    except ValueError as exc:
        raise ConfigError(f"{rel} is not valid JSON: {exc}", hint="run pipenv lock again") from None
    if not isinstance(data, dict) or not isinstance(data.get("default", {}), dict):
        raise ConfigError(f"{rel} is not a Pipfile.lock (no default section)")
    meta = data.get("_meta", {}) if isinstance(data.get("_meta"), dict) else {}
    entries: dict[str, str] = {}
    local: list[LocalSource] = []
    for section in LOCK_SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{rel}: {section} must be an object")
        for name, spec in sorted(table.items()):
            if not isinstance(spec, dict):
                raise ConfigError(f"{rel}: {section}.{name} must be an object")
            source = _local(name, spec, path.parent, project, rel)
            if source is not None:
                if all(s.name != name for s in local):
                    local.append(source)
                continue
            version, hashes = str(spec.get("version", "")), spec.get("hashes", [])
            if not version.startswith("==") or not hashes:
                raise ConfigError(
                    f"{rel}: {section}.{name} has no pinned version or no hashes",
                    hint="run pipenv lock again, or declare requirements.txt instead",
                )
            markers = f" ; {spec['markers']}" if spec.get("markers") else ""
            extras = _extras(spec, f"{rel}: {name}")
            head = name + (f"[{','.join(extras)}]" if extras else "")
            line = " \\\n".join(
                [f"{head}{version}{markers}"] + [f"    --hash={h}" for h in sorted(hashes)]
            )
            if name.lower() in entries and not entries[name.lower()].startswith(f"{head}{version}"):
                raise ConfigError(
                    f"{rel}: {name} is locked at two versions (default and develop)",
                    hint="run pipenv lock again",
                )
            entries.setdefault(name.lower(), line)
    options = _index_options(meta.get("sources"), rel)
    locked = "\n".join([*options, *entries.values()]) + "\n" if entries else ""
    return Declared(
        options=options,
        locked=locked,
        local=tuple(local),
        python=_python_of(meta.get("requires"), rel),
        files=(rel,),
    )
