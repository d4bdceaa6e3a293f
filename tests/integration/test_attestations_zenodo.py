"""Concept DOIs and published attestations against the local Zenodo-compatible server (issue 18).

A capsule is published, then two new versions of it (the second by its concept DOI); replays
by the concept DOI get the latest version, replays by a version DOI that version; the
concept's record read is 404 as on zenodo.org (zenodo/zenodo#2499); an attestation is
published as its own record linked to the capsule's DOI and fetched back, verified.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from repro.sign import generate_key
from tests.conftest import run_cli
from tests.zenodo_server import ZenodoServer

TOKEN = "zt-Att3stT0ken-9c1d2e3f4a5b6c7d"  # noqa: S105 (a test token)


@pytest.fixture
def zenodo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZenodoServer]:
    with ZenodoServer(tokens=(TOKEN,)) as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        monkeypatch.setenv("REPRO_ZENODO_MAX_WAIT", "0.01")
        monkeypatch.setenv("REPRO_ZENODO_INDEX_WAIT", "0.5")
        monkeypatch.setenv("REPRO_DOI_RESOLVER", f"{server.url}/doi-resolver")
        yield server


def cli_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any], str]:
    result = run_cli(*args, "--json", cwd=cwd, timeout=900)
    assert "Traceback" not in result.stderr, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    try:
        return result.returncode, json.loads(result.stdout), result.stderr
    except json.JSONDecodeError:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}") from None


@pytest.fixture
def versions(
    zenodo: ZenodoServer, tiny_study: Path, offline_index: Path, tmp_path: Path
) -> dict[str, Any]:
    """Three published versions of the tiny study; the third by the concept DOI."""
    generate_key()
    master = tmp_path / "master.tgz"
    result = run_cli("capture", str(tiny_study), "-o", str(master), "--sign")
    assert result.returncode == 0, result.stderr
    dois: list[str] = []
    concept = None
    for n in (1, 2, 3):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        capsule = folder / "study.capsule.tgz"
        shutil.copyfile(master, capsule)
        args = ["publish", str(capsule), "--publish"]
        if n == 2:
            args += ["--new-version-of", dois[0]]
        if n == 3:
            assert concept is not None
            args += ["--new-version-of", concept]  # the concept DOI: its latest version
        code, doc, err = cli_json(*args)
        assert code == 0, err
        dois.append(doc["doi"])
        concept = doc["concept_doi"]
    assert concept is not None and len(set(dois)) == 3
    return {"dois": dois, "concept": concept}


def test_concept_dois_resolve_to_the_latest_version(
    zenodo: ZenodoServer, versions: dict[str, Any], tmp_path: Path
) -> None:
    dois, concept = versions["dois"], versions["concept"]
    recids = [int(d.rsplit(".", 1)[1]) for d in dois]
    concept_id = int(concept.rsplit(".", 1)[1])
    # As on zenodo.org: the concept's record read is 404, /versions/latest knows it.
    read = httpx.get(f"{zenodo.api}/records/{concept_id}")
    assert read.status_code == 404
    latest = httpx.get(f"{zenodo.api}/records/{concept_id}/versions/latest", follow_redirects=True)
    assert latest.status_code == 200 and latest.json()["id"] == recids[2]
    # Each version was published as the next of the one before.
    relations = [zenodo.records[r]["metadata"].get("related_identifiers", []) for r in recids]
    assert {"identifier": dois[1], "relation": "isNewVersionOf", "scheme": "doi"} in relations[2]

    code, report, err = cli_json("replay", concept, "--target", "local", "--run", "analyse")
    assert code == 0, err
    assert report["doi"] == dois[2] and report["concept_doi"] == concept
    assert f"replaying its latest version, {dois[2]}" in err
    for doi in dois:
        code, report, err = cli_json("replay", doi, "--target", "local", "--run", "analyse")
        assert code == 0, err
        assert report["doi"] == doi and report["concept_doi"] is None
    code, hist, _ = cli_json("history", concept)
    assert [e["doi"] for e in hist["entries"]] == [dois[2]]
    code, hist, _ = cli_json("history")
    assert [e["doi"] for e in hist["entries"]] == [dois[2], *dois]

    code, fetched, err = cli_json("fetch", concept, "-o", str(tmp_path / "got"))
    assert code == 0, err
    assert fetched["doi"] == dois[2] and fetched["concept_doi"] == concept

    # --version-doi-only refuses a concept DOI, naming the version to use instead.
    for command in ("fetch", "replay"):
        result = run_cli(command, concept, "--version-doi-only")
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "is a concept DOI" in errors[0]
        assert f"the latest version is {dois[2]}" in result.stderr
    code, fetched, _ = cli_json("fetch", dois[0], "--version-doi-only", "-o", str(tmp_path / "v"))
    assert code == 0 and fetched["doi"] == dois[0]

    # Where /versions/latest is missing, the DOI's redirect (doi.org) leads to the latest.
    zenodo.inject("versions_latest", "status", status=404, times=5)
    code, fetched, err = cli_json("fetch", concept, "-o", str(tmp_path / "fallback"))
    assert code == 0, err
    assert fetched["doi"] == dois[2] and zenodo.count("doi_landing") >= 1


def test_an_attestation_is_published_linked_to_the_capsule_and_fetched_back(
    zenodo: ZenodoServer, versions: dict[str, Any], tmp_path: Path
) -> None:
    doi = versions["dois"][2]
    att = tmp_path / "replay.attestation.json"
    code, _, err = cli_json("replay", doi, "--target", "local", "--attest", str(att))
    assert code == 0, err
    code, doc, err = cli_json(
        "publish", "--attestation", str(att), "--creator", "Roe, Rick", "--publish"
    )
    assert code == 0, err
    assert doc["state"] == "published" and doc["capsule_doi"] == doi
    record = zenodo.records[int(doc["doi"].rsplit(".", 1)[1])]
    assert record["metadata"]["related_identifiers"] == [
        {"identifier": doi, "relation": "isSupplementTo", "scheme": "doi"}
    ]
    assert [f["key"] for f in record["files"]] == [att.name]
    # Publishing it again does nothing more.
    code, again, _ = cli_json("publish", "--attestation", str(att), "--creator", "Roe, Rick")
    assert code == 0 and again["doi"] == doc["doi"] and len(zenodo.published()) == 4

    out = tmp_path / "fetched"
    code, fetched, err = cli_json("fetch", doi, "--attestations", "-o", str(out))
    assert code == 0, err
    (got,) = fetched["attestations"]
    assert got["verdict"] == "reproduced" and got["trust"] == "trusted" and got["problem"] is None
    assert Path(got["path"]).read_bytes() == att.read_bytes()
    assert fetched["attestation_summary"] == "reproduced once by 1 key on 1 platform"
    code, checked, _ = cli_json("verify-attestation", got["path"], "--capsule", fetched["capsule"])
    assert code == 0 and checked["attestations"][0]["capsule_matches"]
    # The attestation of one version is not one of another version.
    code, other, _ = cli_json("fetch", versions["dois"][0], "--attestations", "-o", str(out))
    assert code == 0 and other["attestations"] == []


def test_publishing_an_attestation_of_an_unpublished_capsule_is_refused(
    zenodo: ZenodoServer, tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    generate_key()
    capsule = tmp_path / "t.capsule.tgz"
    assert run_cli("capture", str(tiny_study), "-o", str(capsule)).returncode == 0
    att = tmp_path / "t.attestation.json"
    result = run_cli(
        "replay", str(capsule), "--target", "local", "--run", "analyse", "--attest", str(att)
    )
    assert result.returncode == 0, result.stderr
    result = run_cli("publish", "--attestation", str(att), "--creator", "Roe, Rick")
    assert result.returncode == 2 and "carries no DOI" in result.stderr
    assert "hint:" in result.stderr and zenodo.deps == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = run_cli("publish", "--attestation", str(bad), "--creator", "Roe, Rick")
    assert result.returncode == 4 and "not a DSSE envelope" in result.stderr
