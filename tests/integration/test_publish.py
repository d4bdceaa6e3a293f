"""`repro publish` and `repro fetch` against a local Zenodo-compatible server.

The server (tests/zenodo_server.py) runs in-process on 127.0.0.1 and behaves as ZENODO.md
describes zenodo.org today, with injectable faults. Most cases call the core `publish()`
in-process (fast); the CLI is exercised in-process through typer's runner for the error
paths (to read stdout/stderr) and as a subprocess for the end-to-end round trips.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from repro.capsule.reader import read_capsule
from repro.capsule.restamp import restamp_capsule
from repro.config.models import Author
from repro.errors import CapsuleNotFoundError
from repro.publish import PublishOptions, PublishResult, publish, resolve_target
from repro.publish.client import ZenodoClient
from repro.publish.error_body import parse_error_body
from repro.publish.errors import (
    ChecksumMismatchError,
    DownloadChecksumError,
    PendingDraftError,
    PublishValidationError,
    UnsafeLinkError,
    ZenodoAuthError,
    ZenodoRateLimitedError,
    ZenodoUnavailableError,
)
from repro.publish.fetch import fetch_capsule, parse_reference, resolve_capsule_argument
from repro.publish.journal import Step
from repro.publish.metadata import build_metadata, orcid_ok
from repro.publish.target import SANDBOX_TOKEN_ENV, Target, read_token
from repro.sign import generate_key, load_private_key
from tests.conftest import run_cli
from tests.zenodo_server import ZenodoServer

TOKEN = "zt-Pub1ishT0ken-5b8e2f9c4a7d1e3b"  # noqa: S105 (a test token, searched for in all output)
BAD_TOKEN = "zt-Wr0ngT0ken-0f1e2d3c4b5a6978"  # noqa: S105

CFF = """\
cff-version: 1.2.0
message: If you use this study, cite it as below.
title: Tiny study, second version
version: 2.0
date-released: 2024-05-17
type: software
authors:
  - family-names: Doe
    given-names: Jane
    orcid: https://orcid.org/0000-0002-1825-0097
    affiliation: Test U
license: CC-BY-4.0
preferred-citation:
  type: article
  title: The tiny paper
  doi: 10.1234/tiny.paper
  authors:
    - family-names: Doe
      given-names: Jane
"""


class Killed(BaseException):
    """A crash at a chosen point (BaseException: nothing on the way may swallow it)."""


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def zenodo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZenodoServer]:
    with ZenodoServer(tokens=(TOKEN,)) as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        monkeypatch.setenv("REPRO_ZENODO_MAX_WAIT", "0.01")
        # This server's lists have no lag unless a test gives it one: a short index wait
        # keeps resumes after a create that was never sent fast.
        monkeypatch.setenv("REPRO_ZENODO_INDEX_WAIT", "0.5")
        yield server


@pytest.fixture(scope="session")
def capsule_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("publish-capsules")


def _keys() -> Path:
    return Path(os.environ["REPRO_CONFIG_DIR"]) / "keys"


def _captured(name: str, project: Path, store: Path, dest: Path) -> Path:
    """Capture `project` once per session (signed), then hand each test a copy; the signing
    key moves into the test's own config dir."""
    master = store / f"{name}.capsule.tgz"
    if not master.exists():
        if not (store / "keys").exists():
            generate_key()
            shutil.copytree(_keys(), store / "keys")
        else:
            shutil.copytree(store / "keys", _keys(), dirs_exist_ok=True)
        result = run_cli("capture", str(project), "-o", str(master), "--sign")
        assert result.returncode == 0, result.stderr
    else:
        shutil.copytree(store / "keys", _keys(), dirs_exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(master, dest)
    return dest


@pytest.fixture
def capsule(tiny_study: Path, offline_index: Path, capsule_store: Path, tmp_path: Path) -> Path:
    """A signed capsule of the tiny study (no CITATION.cff, not a git work tree)."""
    return _captured("v1", tiny_study, capsule_store, tmp_path / "pub" / "study.capsule.tgz")


@pytest.fixture
def capsule_v2(tiny_study: Path, offline_index: Path, capsule_store: Path, tmp_path: Path) -> Path:
    """The study's next version: other data, and a CITATION.cff (version, date, paper DOI)."""
    (tiny_study / "data" / "values.csv").write_text("1 2 3 4 5\n")
    (tiny_study / "CITATION.cff").write_text(CFF)
    return _captured("v2", tiny_study, capsule_store, tmp_path / "pub2" / "study-v2.capsule.tgz")


def run(capsule: Path, events: list[str] | None = None, **kw: Any) -> PublishResult:
    opts = PublishOptions(
        capsule=capsule,
        target=kw.pop("target", None) or resolve_target(),
        publish=kw.pop("publish", True),
        today=date(2025, 1, 2),
        **kw.pop("opts", {}),
    )
    return publish(opts, observe=events.append if events is not None else None, **kw)


def cli(*args: str) -> tuple[int, str, str]:
    """The CLI in-process (fast), with stdout and stderr apart."""
    from repro.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_no_token(token: str, *texts: str, folders: tuple[Path, ...] = ()) -> None:
    """The token appears in no text and no file (capsules are searched decompressed)."""
    for text in texts:
        assert token not in text
    for folder in folders:
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if path.name.endswith(".tgz"):
                data = gzip.decompress(data)
            assert token.encode() not in data, path


def published_deps(server: ZenodoServer) -> list[Any]:
    return server.published()


def journal_of(capsule: Path) -> dict[str, Any]:
    return json.loads(capsule.with_name(capsule.name + ".zenodo-journal.json").read_text())


def receipt_of(capsule: Path) -> dict[str, Any]:
    return json.loads(capsule.with_name(capsule.name + ".zenodo.json").read_text())


# --- first publication -------------------------------------------------------------------


def test_first_publish_leaves_a_draft_then_publishes_a_capsule_carrying_its_doi(
    zenodo: ZenodoServer, capsule: Path
) -> None:
    draft = run_cli("publish", str(capsule), "--json")
    assert draft.returncode == 0, draft.stderr
    doc = json.loads(draft.stdout)
    assert doc["state"] == "draft" and doc["draft_url"]
    (dep,) = zenodo.deps.values()
    assert not dep.submitted and not zenodo.published()  # default: never publish
    assert doc["doi"] == f"10.5281/zenodo.{dep.id}" == dep.metadata["prereserve_doi"]["doi"]
    assert [(f.key, f.md5) for f in dep.files.values()] == [(capsule.name, doc["md5"])]
    assert dep.metadata["title"] == "Tiny study"
    assert dep.metadata["creators"] == [
        {"name": "Doe, Jane", "affiliation": "Test U", "orcid": "0000-0002-1825-0097"}
    ]
    assert dep.metadata["license"] == "CC-BY-4.0" and dep.metadata["upload_type"] == "software"
    assert dep.metadata["keywords"] == ["test"] and dep.metadata["access_right"] == "open"
    assert f"repro replay {doc['doi']}" in dep.metadata["notes"]
    human = run_cli("publish", str(capsule))  # the same draft again, human output
    assert human.returncode == 0, human.stderr
    assert "draft ready" in human.stdout and "--publish" in human.stdout
    assert len(human.stdout.strip().splitlines()) == 1  # the one-line summary

    done = run_cli("publish", str(capsule), "--publish", "--json")
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert zenodo.count("create") == 1 and len(zenodo.deps) == 1  # resumed, not re-created
    assert dep.submitted and dep.doi == receipt["doi"] == doc["doi"]
    assert receipt["state"] == "published" and receipt["concept_doi"] == dep.conceptdoi
    assert receipt["record_url"] == f"{zenodo.url}/records/{dep.id}"
    assert receipt == {**receipt_of(capsule), "receipt": receipt["receipt"]} | {
        k: receipt[k] for k in ("journal", "resumed", "already_done", "ok")
    }
    for key in ("doi", "concept_doi", "record_url", "file_name", "md5", "sha256", "size"):
        assert receipt[key], key
    assert receipt["target"] == "custom" and receipt["time"]

    stamped = Path(receipt["capsule"])
    assert stamped.name == f"study.capsule.zenodo-{dep.id}.tgz"
    assert zenodo.record_files[dep.id][capsule.name] == stamped.read_bytes()
    verified = run_cli("verify", str(stamped), "--require-trusted", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["signature"]["state"] == "trusted"
    assert read_capsule(stamped).manifest.metadata.doi == receipt["doi"]
    assert read_capsule(capsule).manifest.metadata.doi is None  # the original is untouched

    again = run_cli("publish", str(capsule), "--publish")
    assert again.returncode == 0 and "already published" in again.stdout
    assert zenodo.count("publish") == 1

    # The transport: Bearer header only, to the API origin, exact content types, our
    # User-Agent, and the server's session cookie never sent back.
    for call in zenodo.calls:
        assert call.headers.get("authorization") == f"Bearer {TOKEN}", call.path
        assert "access_token" not in call.query
        assert call.headers["user-agent"].startswith("repro/")
        assert "cookie" not in call.headers
        if call.endpoint in ("create", "update"):
            assert call.headers["content-type"] == "application/json"
        if call.endpoint == "upload":
            assert call.headers["content-type"] == "application/octet-stream"
    assert_no_token(
        TOKEN,
        draft.stdout + draft.stderr + done.stdout + done.stderr + human.stdout + human.stderr,
        folders=(capsule.parent,),
    )


def test_targets_default_to_production_and_never_to_publishing(
    monkeypatch: pytest.MonkeyPatch, capsule: Path
) -> None:
    production = resolve_target()
    assert production.api_url == "https://zenodo.org/api" and production.kind == "production"
    sandbox = resolve_target(sandbox=True)
    assert sandbox.api_url == "https://sandbox.zenodo.org/api"
    assert sandbox.token_variable == SANDBOX_TOKEN_ENV and sandbox.doi_prefix == "10.5072"
    custom = resolve_target(zenodo_url="http://127.0.0.1:9/api/")
    assert custom.api_url == "http://127.0.0.1:9/api" and custom.kind == "custom"
    monkeypatch.setenv("REPRO_ZENODO_URL", "https://zenodo.example.org")
    assert resolve_target().site_url == "https://zenodo.example.org"
    assert resolve_target(sandbox=True).kind == "sandbox"  # the flag beats the environment
    code, _out, err = cli("publish", str(capsule), "--sandbox", "--zenodo-url", "https://x.org")
    assert code == 2 and "exclude each other" in err
    code, _out, err = cli("publish", str(capsule), "--zenodo-url", "http://zenodo.example.org")
    assert code == 2 and "plain http" in err  # a token never travels unencrypted
    # No token: a clear error before any request, naming the variable to set.
    monkeypatch.delenv("REPRO_ZENODO_URL")
    code, _out, err = cli("publish", str(capsule))
    assert code == 1 and "ZENODO_API_TOKEN is not set" in err
    monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
    code, _out, err = cli("publish", str(capsule), "--sandbox")
    assert code == 1 and "ZENODO_SANDBOX_API_TOKEN is not set" in err
    assert not capsule.with_name(capsule.name + ".zenodo-sandbox.json").exists()
    assert repr(read_token(production)) == "Secret('***')"  # the token never prints


def test_sandbox_dois_are_built_from_the_recid_and_the_sandbox_prefix(
    monkeypatch: pytest.MonkeyPatch, capsule: Path
) -> None:
    with ZenodoServer(tokens=(TOKEN,), prefix="10.5072") as server:
        monkeypatch.setenv(SANDBOX_TOKEN_ENV, TOKEN)
        target = Target("sandbox", server.url, SANDBOX_TOKEN_ENV)
        result = run(capsule, target=target)
    (dep,) = server.deps.values()
    assert result.receipt.doi == f"10.5072/zenodo.{dep.id}" == dep.doi
    assert result.receipt_path.name == "study.capsule.tgz.zenodo-sandbox.json"
    assert Path(result.receipt.capsule).name == f"study.capsule.zenodo-sandbox-{dep.id}.tgz"


# --- new versions ------------------------------------------------------------------------


@pytest.mark.parametrize("returns_old", [False, True], ids=["zenodo-today", "as-documented"])
def test_new_version_replaces_the_files_and_links_the_previous_version(
    monkeypatch: pytest.MonkeyPatch, capsule: Path, capsule_v2: Path, returns_old: bool
) -> None:
    with ZenodoServer(tokens=(TOKEN,), newversion_returns_old=returns_old) as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        first = run(capsule).receipt
        code, out, err = cli(
            "publish", str(capsule_v2), "--new-version-of", first.doi, "--publish", "--json"
        )
    assert code == 0, err
    second = json.loads(out)
    old, new = (server.deps[int(d.split(".")[-1])] for d in (first.doi, second["doi"]))
    assert server.count("newversion") == 1 and server.count("delete_file") == 1
    assert new.submitted and new.conceptrecid == old.conceptrecid
    assert second["concept_doi"] == first.concept_doi == old.conceptdoi
    assert [f.key for f in new.files.values()] == [capsule_v2.name]  # inherited file removed
    assert new.files[capsule_v2.name].md5 == second["md5"]
    assert new.metadata["version"] == "2.0" and new.metadata["publication_date"] == "2024-05-17"
    assert new.metadata["title"] == "Tiny study"  # repro.toml wins over CITATION.cff
    related = {(r["relation"], r["identifier"]) for r in new.metadata["related_identifiers"]}
    assert ("isNewVersionOf", first.doi) in related
    assert ("isSupplementTo", "10.1234/tiny.paper") in related  # from CITATION.cff
    assert second["new_version_of"] == first.doi
    assert read_capsule(Path(second["capsule"])).manifest.metadata.doi == second["doi"]
    assert_no_token(TOKEN, out, err, folders=(capsule.parent, capsule_v2.parent))


def test_a_half_finished_new_version_draft_not_ours_is_reported_with_the_cleanup(
    zenodo: ZenodoServer, capsule: Path, capsule_v2: Path
) -> None:
    first = run(capsule).receipt
    old = zenodo.deps[first.deposition_id]
    stale = zenodo.new_version_draft(old)  # another tool's leftover, files inherited
    code, out, err = cli("publish", str(capsule_v2), "--new-version-of", first.doi)
    assert code == 1
    assert f"draft {stale.id}" in err and "actions/discard" in err
    assert "$ZENODO_API_TOKEN" in err.replace("\n", "")  # the variable, never its value
    assert zenodo.count("newversion") == 0  # detected before walking into the wedge
    assert_no_token(TOKEN, out, err, folders=(capsule_v2.parent,))
    with pytest.raises(PendingDraftError):
        run(capsule_v2, opts={"new_version_of": first.doi})
    # Doing what the hint says clears the way.
    with ZenodoClient(zenodo.api, read_token(resolve_target())) as client:
        client.action(stale.id, "discard")
    result = run(capsule_v2, opts={"new_version_of": first.doi})
    assert zenodo.deps[result.receipt.deposition_id].submitted
    assert len(zenodo.deps) == 2


def test_the_wedge_itself_is_reported_as_a_pending_draft(
    zenodo: ZenodoServer, capsule: Path, capsule_v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(capsule).receipt
    # A draft that appeared just before (a race): not in the lists yet when repro checks, so
    # newversion runs into the server's 400, and the draft is then found once indexed.
    zenodo.index_lag = 1.0
    monkeypatch.setenv("REPRO_ZENODO_INDEX_WAIT", "10")
    stale = zenodo.new_version_draft(zenodo.deps[first.deposition_id])
    with pytest.raises(PendingDraftError, match="Please remove all files first") as raised:
        run(capsule_v2, opts={"new_version_of": first.doi})
    assert zenodo.count("newversion") == 1 and stale.files
    assert f"draft {stale.id}" in raised.value.message
    assert f"/deposit/depositions/{stale.id}/actions/discard" in (raised.value.hint or "")


def test_our_own_half_finished_new_version_is_resumed(
    zenodo: ZenodoServer, capsule: Path, capsule_v2: Path
) -> None:
    first = run(capsule).receipt

    def crash(step: Step) -> None:
        if step == Step.CREATED:
            raise Killed

    with pytest.raises(Killed):
        run(capsule_v2, opts={"new_version_of": first.doi}, on_step=crash)
    draft_id = journal_of(capsule_v2)["deposition_id"]
    result = run(capsule_v2, opts={"new_version_of": first.doi})
    assert result.resumed and result.receipt.deposition_id == draft_id
    assert zenodo.count("newversion") == 1 and len(zenodo.deps) == 2

    # The newversion answer lost on the way: the next run finds the draft via the journal.
    third = capsule_v2.with_name("study-v3.capsule.tgz")
    key = load_private_key(_keys() / "default.key")
    restamp_capsule(capsule_v2, third, metadata={"description": "Third version."}, key=key)
    zenodo.inject("newversion", "drop_after")
    zenodo.inject("read", "status", status=503, times=50, skip=1)  # after the version check
    with pytest.raises(ZenodoUnavailableError):
        run(third, opts={"new_version_of": result.receipt.doi})
    zenodo.faults.clear()
    assert journal_of(third)["step"] == "creating"
    final = run(third, opts={"new_version_of": result.receipt.doi})
    assert zenodo.count("newversion") == 2 and len(zenodo.deps) == 3
    assert zenodo.deps[final.receipt.deposition_id].submitted


def test_a_lost_newversion_answer_is_settled_through_the_concepts_drafts(
    zenodo: ZenodoServer, capsule: Path, capsule_v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zenodo.org's published deposition names itself as latest_draft, and its lists lag:
    the draft a lost newversion made is found among the concept's drafts, once indexed."""
    first = run(capsule).receipt
    zenodo.index_lag = 1.5
    monkeypatch.setenv("REPRO_ZENODO_INDEX_WAIT", "30")
    zenodo.inject("newversion", "drop_after")
    events: list[str] = []
    result = run(capsule_v2, events, opts={"new_version_of": first.doi})
    assert zenodo.count("newversion") == 1 and len(zenodo.deps) == 2
    new = zenodo.deps[result.receipt.deposition_id]
    assert new.submitted and new.conceptrecid == zenodo.deps[first.deposition_id].conceptrecid
    assert any("waiting for Zenodo's index" in e for e in events)
    listed = [c for c in zenodo.calls if c.endpoint == "list"]
    assert listed and all(c.query.get("q") == [f"conceptrecid:{new.conceptrecid}"] for c in listed)
    old = zenodo.dep_json(zenodo.deps[first.deposition_id])
    assert old["links"]["latest_draft"].endswith(f"/depositions/{first.deposition_id}")


def test_a_lost_create_behind_a_lagging_drafts_list_makes_one_deposition(
    zenodo: ZenodoServer, capsule: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zenodo.index_lag = 5.0  # as long as the attack campaign saw; the marker search used to
    monkeypatch.setenv("REPRO_ZENODO_INDEX_WAIT", "30")  # give up after ~3 s
    zenodo.inject("create", "drop_after")
    events: list[str] = []
    result = run(capsule, events)
    assert zenodo.count("create") == 1 and len(zenodo.deps) == 1
    assert result.receipt.deposition_id == next(iter(zenodo.deps))
    assert zenodo.published() and any("looking for the draft" in e for e in events)


def test_two_concurrent_publishers_of_one_capsule_make_one_record(
    zenodo: ZenodoServer, capsule: Path
) -> None:
    """Two real processes: the second finds the capsule locked and says so; one record."""
    zenodo.slow["create"] = 2.0  # the first holds the lock while the second starts
    command = [sys.executable, "-m", "repro", "publish", str(capsule), "--publish"]
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    outcomes = sorted(zip([p.returncode for p in procs], errors, strict=True))
    assert [code for code, _err in outcomes] == [0, 1], outcomes
    assert "another repro publish of study.capsule.tgz is running" in outcomes[1][1]
    assert "resumes from the journal" in outcomes[1][1]
    assert len(zenodo.deps) == 1 and len(zenodo.published()) == 1
    assert zenodo.count("create") == 1 and zenodo.count("publish") == 1
    again = run_cli("publish", str(capsule), "--publish")  # the loser, run again: done
    assert again.returncode == 0 and len(zenodo.published()) == 1


# --- resuming ----------------------------------------------------------------------------

STEPS = [s for s in Step if s != Step.PUBLISHED and s != Step.CLEARED]


@pytest.mark.parametrize("killed_after", STEPS, ids=[s.value for s in STEPS])
def test_resume_after_a_kill_between_every_pair_of_steps(
    zenodo: ZenodoServer, capsule: Path, killed_after: Step
) -> None:
    def crash(step: Step) -> None:
        if step == killed_after:
            journal = journal_of(capsule)  # complete, parseable JSON at every step
            assert journal["step"] == killed_after.value
            raise Killed

    with pytest.raises(Killed):
        run(capsule, on_step=crash)
    assert len(zenodo.deps) <= 1
    result = run(capsule)
    assert result.resumed
    (dep,) = zenodo.deps.values()  # never a second deposition
    assert dep.submitted and zenodo.count("publish", answered=True) == 1
    assert result.receipt.doi == dep.doi and result.receipt.deposition_id == dep.id
    stamped = Path(result.receipt.capsule)
    assert zenodo.record_files[dep.id][capsule.name] == stamped.read_bytes()
    assert read_capsule(stamped).manifest.metadata.doi == dep.doi
    assert_no_token(TOKEN, folders=(capsule.parent,))


@pytest.mark.parametrize("endpoint", ["create", "upload", "update", "files", "publish"])
def test_a_dropped_connection_after_the_server_acted_is_reconciled(
    zenodo: ZenodoServer, capsule: Path, endpoint: str
) -> None:
    zenodo.inject(endpoint, "drop_after")
    result = run(capsule)
    (dep,) = zenodo.deps.values()
    assert dep.submitted and result.receipt.doi == dep.doi
    assert zenodo.count("create") == 1 and zenodo.count("publish") == 1  # POSTs: never twice
    safe_retried = endpoint in ("upload", "update", "files")
    assert zenodo.count(endpoint) == 1 + safe_retried
    assert list(zenodo.record_files[dep.id]) == [capsule.name]


def test_a_lost_create_is_found_again_by_the_next_run(zenodo: ZenodoServer, capsule: Path) -> None:
    zenodo.inject("create", "drop_after")  # created, but the answer never arrives
    zenodo.inject("list", "status", status=500, times=50)  # and the drafts cannot be read
    with pytest.raises(ZenodoUnavailableError):
        run(capsule)
    assert journal_of(capsule)["step"] == "creating" and len(zenodo.deps) == 1
    zenodo.faults.clear()
    result = run(capsule)
    assert len(zenodo.deps) == 1 and zenodo.count("create") == 1
    assert result.receipt.deposition_id == next(iter(zenodo.deps))


def test_the_journal_guards_against_mixing_up_publications(
    zenodo: ZenodoServer, capsule: Path, capsule_v2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = run(capsule, publish=False).receipt
    original = capsule.read_bytes()
    shutil.copyfile(capsule_v2, capsule)  # captured again under the same name
    code, _out, err = cli("publish", str(capsule), "--publish")
    assert code == 1 and "about another version" in err and f"deposit/{draft.deposition_id}" in err
    capsule.write_bytes(original)
    code, _out, err = cli("publish", str(capsule), "--new-version-of", "10.5281/zenodo.1")
    assert code == 1 and "started as a first version" in err
    monkeypatch.setenv("REPRO_ZENODO_URL", "http://127.0.0.1:9")
    code, _out, err = cli("publish", str(capsule))
    assert code == 1 and "is being published to" in err
    monkeypatch.setenv("REPRO_ZENODO_URL", zenodo.url)
    # Published on the website in the meantime: the next run adopts it, publishes nothing.
    with ZenodoClient(zenodo.api, read_token(resolve_target())) as client:
        client.publish(draft.deposition_id)
    result = run(capsule)
    assert result.receipt.state == "published" and zenodo.count("publish") == 1
    assert len(zenodo.deps) == 1 and zenodo.count("create") == 1


# --- rate limits, server errors, timeouts ------------------------------------------------


def test_429_waits_for_retry_after(zenodo: ZenodoServer, capsule: Path) -> None:
    zenodo.inject("create", "status", status=429, times=2, headers={"Retry-After": "7"})
    zenodo.inject("upload", "status", status=429, headers={"Retry-After": "3"})
    events: list[str] = []
    result = run(capsule, events)
    assert result.receipt.state == "published" and len(zenodo.deps) == 1
    assert zenodo.count("create") == 3 and zenodo.count("upload") == 2
    waits = [e for e in events if "rate limited" in e]
    assert sum("Retry-After: 7" in e for e in waits) == 2 and any(
        "Retry-After: 3" in e for e in waits
    )
    assert all(e.startswith("waiting 0.0 s") for e in waits)  # capped by REPRO_ZENODO_MAX_WAIT


def test_429_that_does_not_stop_gives_up_with_exit_5_and_resumes_later(
    zenodo: ZenodoServer, capsule: Path
) -> None:
    zenodo.inject("read", "status", status=429, times=5, headers={"Retry-After": "3600"})
    code, out, err = cli("publish", str(capsule), "--publish")
    assert code == 5 and "rate limited" in err and "resumes" in err
    assert_no_token(TOKEN, out, err, folders=(capsule.parent,))
    zenodo.inject("files", "status", status=429, times=5, headers={"Retry-After": "60"})
    with pytest.raises(ZenodoRateLimitedError, match="retry after 60 s"):
        run(capsule)
    result = run(capsule)
    assert result.resumed and len(zenodo.deps) == 1


def test_a_real_rate_limit_window_is_respected(
    monkeypatch: pytest.MonkeyPatch, capsule: Path
) -> None:
    with ZenodoServer(tokens=(TOKEN,), rate_limit=4, rate_window=1.0) as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        monkeypatch.setenv("REPRO_ZENODO_MAX_WAIT", "1.5")
        result = run(capsule)
    assert result.receipt.state == "published" and len(server.deps) == 1


def test_5xx_is_retried_on_safe_calls_only(zenodo: ZenodoServer, capsule: Path) -> None:
    for endpoint in ("upload", "update", "read", "files"):
        zenodo.inject(endpoint, "status", status=503, times=2)
    zenodo.inject("create", "status", status=500)  # not done: must not simply repeat a POST
    events: list[str] = []
    result = run(capsule, events)
    assert result.receipt.state == "published"
    assert zenodo.count("upload") == 3 and zenodo.count("update") == 3
    assert zenodo.count("create") == 2 and zenodo.count("list") >= 1  # looked before re-creating
    assert len(zenodo.deps) == 1
    assert any("no clear answer to create" in e for e in events)


def test_5xx_that_persists_is_exit_5_with_a_readable_message(
    zenodo: ZenodoServer, capsule: Path
) -> None:
    zenodo.inject("upload", "status", status=502, times=50)
    code, out, err = cli("publish", str(capsule))
    assert code == 5 and "502 Gateway Time-out" in err and "<html" not in err
    assert journal_of(capsule)["step"] == "stamped"
    assert_no_token(TOKEN, out, err, folders=(capsule.parent,))
    zenodo.faults.clear()
    assert run(capsule).receipt.state == "published" and len(zenodo.deps) == 1


@pytest.mark.parametrize("kind", ["status_after", "drop_after"])
def test_504_after_the_publish_happened_is_reconciled_not_repeated(
    zenodo: ZenodoServer, capsule: Path, kind: str
) -> None:
    zenodo.inject("publish", kind, status=504)  # type: ignore[arg-type]
    events: list[str] = []
    result = run(capsule, events)
    (dep,) = zenodo.deps.values()
    assert dep.submitted and result.receipt.state == "published"
    assert zenodo.count("publish") == 1  # read the deposition instead of publishing again
    assert any("no clear answer to publish" in e for e in events)
    assert receipt_of(capsule)["doi"] == dep.doi


# --- the token ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 401])
def test_a_bad_token_is_not_retried_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsule: Path, status: int
) -> None:
    with ZenodoServer(tokens=(TOKEN,), auth_status=status, echo_token=True) as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", BAD_TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        code, out, err = cli("publish", str(capsule), "--publish")
        assert code == 1 and "refused the token" in err and "ZENODO_API_TOKEN" in err
        assert len(server.calls) == 1  # never retried
        code_j, out_j, err_j = cli("publish", str(capsule), "--json")
        assert code_j == 1 and json.loads(out_j)["kind"] == "ZenodoAuthError"
        with pytest.raises(ZenodoAuthError) as raised:
            run(capsule)
    assert len(server.calls) == 3 and not server.deps
    assert_no_token(
        BAD_TOKEN,
        out,
        err,
        out_j,
        err_j,
        str(raised.value),
        raised.value.hint,
        repr(raised.value.args),
        folders=(capsule.parent,),
    )


def test_a_bucket_link_on_another_origin_never_receives_the_token(
    monkeypatch: pytest.MonkeyPatch, capsule: Path
) -> None:
    with (
        ZenodoServer() as elsewhere,
        ZenodoServer(tokens=(TOKEN,), bucket_base=elsewhere.url) as server,
    ):
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        code, out, err = cli("publish", str(capsule), "--publish")
        with pytest.raises(UnsafeLinkError):
            run(capsule)
    assert code == 1 and "not the configured API origin" in err
    assert elsewhere.calls == []  # not a single request went there
    assert not server.published() and server.count("upload") == 0
    assert_no_token(TOKEN, out, err, folders=(capsule.parent,))


def test_every_error_path_keeps_the_token_out(zenodo: ZenodoServer, capsule: Path) -> None:
    """One run per failure kind, through the CLI; nothing anywhere shows the token."""
    texts: list[str] = []
    failures = [
        ("create", "status", 400),
        ("update", "status", 400),
        ("upload", "corrupt", 0),
        ("read", "status", 500),
        ("publish", "status", 404),
    ]
    for endpoint, kind, status in failures:
        zenodo.faults.clear()
        zenodo.inject(endpoint, kind, status=status, times=50)  # type: ignore[arg-type]
        fresh = shutil.copyfile(capsule, capsule.with_name(f"{endpoint}.capsule.tgz"))
        code, out, err = cli("publish", str(fresh), "--publish")
        assert code != 0, (endpoint, out)
        texts += [out, err]
    assert_no_token(TOKEN, *texts, folders=(capsule.parent,))


def _pieces(token: str, text: str) -> list[str]:
    return [token[i : i + 12] for i in range(len(token) - 11) if token[i : i + 12] in text]


def test_links_carrying_the_token_never_reach_the_journal_receipt_or_output(
    monkeypatch: pytest.MonkeyPatch, capsule: Path
) -> None:
    """A server that appends ?access_token=TOKEN to every link of its successful answers."""
    with ZenodoServer(tokens=(TOKEN,), link_suffix=f"?access_token={TOKEN}") as server:
        monkeypatch.setenv("ZENODO_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPRO_ZENODO_URL", server.url)
        code, out, err = cli("publish", str(capsule), "--publish", "--json")
    assert code == 0, err
    assert server.published() and "access_token" not in journal_of(capsule)["bucket_url"]
    assert_no_token(TOKEN, out, err, folders=(capsule.parent,))


@pytest.mark.parametrize(
    "shape",
    ["markup", "entity", "long", "encoded", "field"],
)
def test_an_echoed_token_in_any_shape_is_masked_before_it_is_cut(
    zenodo: ZenodoServer, capsule: Path, shape: str
) -> None:
    body: Any = {
        "markup": f"<html><h1>Denied {TOKEN[:12]}<b>{TOKEN[12:20]}</b>{TOKEN[20:]}</h1></html>",
        "entity": f"<html><h1>Denied {TOKEN[:9]}&#{ord(TOKEN[9])};{TOKEN[10:]}</h1></html>",
        "long": {"status": 400, "message": "x" * 285 + f" token {TOKEN} rejected"},
        "encoded": {"status": 400, "message": f"bad link ?access_token={quote(TOKEN)}"},
        "field": {
            "status": 400,
            "message": "Validation error.",
            "errors": [{"field": "metadata.notes", "messages": [f"echo {TOKEN}"]}],
        },
    }[shape]
    zenodo.inject("create", "status", status=400, body=body)
    code, out, err = cli("publish", str(capsule), "--publish")
    assert code == 1 and err.strip()
    assert_no_token(TOKEN, out, err, folders=(capsule.parent,))
    assert _pieces(TOKEN, out + err) == []


# --- validation and checksums ------------------------------------------------------------


def test_metadata_is_validated_before_any_request_with_one_error_per_field(
    zenodo: ZenodoServer, capsule: Path
) -> None:
    bad = capsule.with_name("bad.capsule.tgz")
    restamp_capsule(
        capsule,
        bad,
        metadata={
            "title": "Untitled study",
            "authors": [
                Author(name="Jane Doe"),
                Author(name="Roe, Richard", orcid="0000-0002-1825-0098"),
            ],
            "license": "Nonsense-1.0",
            "related_doi": "not-a-doi",
        },
        key=load_private_key(_keys() / "default.key"),
    )
    code, out, _err = cli("publish", str(bad), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["kind"] == "PublishValidationError" and "5 problems" in doc["error"]
    for field in ("title:", "creators[0].name:", "creators[1].orcid:", "license:", "related_doi:"):
        assert field in doc["error"], field
    assert zenodo.calls == []  # nothing was sent
    assert not bad.with_name(bad.name + ".zenodo-journal.json").exists()


def test_citation_cff_fills_what_the_capsule_leaves_empty(capsule: Path) -> None:
    manifest = read_capsule(capsule).manifest
    bare = manifest.model_copy(
        update={"metadata": manifest.metadata.model_copy(update={"authors": [], "license": None})}
    )
    cff = (
        "title: From CFF\nauthors:\n  - name: The Tiny Consortium\n"
        "  - family-names: Roe\n    given-names: Rich\n    name-particle: van\n"
        "license: MIT\nkeywords: [a, b]\ntype: dataset\nversion: 1.10\n"
    )
    meta = build_metadata(bare, cff, today=date(2025, 1, 2))
    assert [c.name for c in meta.creators] == ["The Tiny Consortium", "van Roe, Rich"]
    assert meta.license == "MIT" and meta.upload_type == "dataset" and meta.version == "1.10"
    assert meta.title == "Tiny study" and meta.publication_date == "2025-01-02"
    assert meta.description.startswith("<p>Reproducibility capsule of")
    with pytest.raises(PublishValidationError) as raised:
        build_metadata(
            bare,
            "license: [MIT, Apache-2.0]\ndate-released: someday\n",
            today=date(2025, 1, 2),
            communities=["Bad Community"],
            upload_type="novel",
        )
    problems = raised.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "creators",
        "license",
        "license",
        "upload_type",
        "publication_date",
        "communities[0]",
    ]
    with pytest.raises(PublishValidationError, match="not valid YAML"):
        build_metadata(bare, "title: [unclosed\n", today=date(2025, 1, 2))
    assert orcid_ok("0000-0002-1825-0097") and not orcid_ok("0000-0002-1825-0098")


def test_a_checksum_mismatch_aborts_before_publish(zenodo: ZenodoServer, capsule: Path) -> None:
    zenodo.inject("upload", "corrupt")
    with pytest.raises(ChecksumMismatchError):
        run(capsule)
    assert zenodo.count("publish") == 0 and zenodo.count("update") == 0
    (dep,) = zenodo.deps.values()
    assert not dep.submitted and journal_of(capsule)["step"] == "stamped"
    result = run(capsule)  # the next run uploads again (same key replaces) and publishes
    assert dep.submitted and dep.files[capsule.name].md5 == result.receipt.md5
    assert len(zenodo.deps) == 1


# --- fetch and replay --------------------------------------------------------------------


def test_publish_then_fetch_and_replay_by_doi_reproduces(
    zenodo: ZenodoServer, capsule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = run(capsule).receipt
    session_cache = os.environ["REPRO_CACHE_DIR"]
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))  # downloads start afresh
    doi = receipt.doi
    ticks: list[tuple[int, int | None]] = []
    path = resolve_capsule_argument(doi, zenodo.url, None, lambda d, t: ticks.append((d, t)))
    assert path.is_relative_to(tmp_path / "cache" / "zenodo")
    assert path.read_bytes() == Path(receipt.capsule).read_bytes()
    assert ticks[-1] == (receipt.size, receipt.size)
    fetched = run_cli("fetch", doi, "-o", str(tmp_path / "got"), "--json")
    assert fetched.returncode == 0, fetched.stderr
    doc = json.loads(fetched.stdout)
    got = Path(doc["capsule"])
    assert got == tmp_path / "got" / capsule.name and doc["doi"] == doi and doc["cached"]
    assert got.read_bytes() == path.read_bytes()
    assert doc["verify"]["signature"]["state"] == "trusted" and not doc["warnings"]
    for form in (
        f"doi:{doi}",
        f"https://doi.org/{doi}",
        f"{zenodo.url}/records/{receipt.deposition_id}",
    ):
        assert resolve_capsule_argument(form, None, None, None) == path, form
    assert resolve_capsule_argument(str(capsule), None, None, None) == capsule
    with pytest.raises(CapsuleNotFoundError):
        resolve_capsule_argument(str(tmp_path / "nope.tgz"), None, None, None)
    monkeypatch.setenv("REPRO_CACHE_DIR", session_cache)  # the environments built so far
    # The round trip, as a reader does it: replay straight from the DOI.
    replayed = run_cli("replay", doi, "--target", "local", "--zenodo-url", zenodo.url, timeout=900)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "reproduced" in replayed.stdout


def test_fetch_refuses_what_zenodo_did_not_record(
    zenodo: ZenodoServer, capsule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = run(capsule).receipt
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    zenodo.inject("download", "corrupt")
    with pytest.raises(DownloadChecksumError):
        fetch_capsule(receipt.doi, dest_dir=tmp_path / "bad")
    assert not (tmp_path / "bad" / capsule.name).exists()
    code, _out, err = cli("fetch", "10.5281/zenodo.999999", "-o", str(tmp_path))
    assert code == 1 and "no published record 999999" in err
    code, _out, err = cli("fetch", "not a doi", "-o", str(tmp_path))
    assert code == 1 and "not a Zenodo DOI" in err
    zenodo.inject("record", "status", status=403)  # a restricted record: no token involved
    code, _out, err = cli("fetch", receipt.doi, "-o", str(tmp_path))
    assert code == 1 and "access denied" in err and "token" not in err
    zenodo.inject("download", "status", status=503, times=2)
    result = fetch_capsule(receipt.doi, dest_dir=tmp_path / "ok")
    assert result.report is not None and result.md5 == receipt.md5


def _nothing_kept(cache: Path, dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == []
    kept = [p for p in (cache / "zenodo").rglob("*") if p.is_file()] if cache.exists() else []
    assert kept == [], kept


def test_fetch_stops_at_the_declared_size_and_keeps_nothing(
    zenodo: ZenodoServer, capsule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = run(capsule).receipt
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPRO_CACHE_DIR", str(cache))
    zenodo.inject("download", "oversize")  # the file, then 3 MiB more, no length announced
    code, _out, err = cli("fetch", receipt.doi, "-o", str(tmp_path / "got"))
    assert code == 4 and f"more than the {receipt.size} bytes the record declares" in err
    _nothing_kept(cache, tmp_path / "got")
    zenodo.inject("download", "corrupt")
    code, _out, err = cli("fetch", receipt.doi, "-o", str(tmp_path / "got"))
    assert code == 4 and "does not match record" in err
    _nothing_kept(cache, tmp_path / "got")
    result = fetch_capsule(receipt.doi, dest_dir=tmp_path / "got")  # and then it works
    assert result.path.read_bytes() == Path(receipt.capsule).read_bytes()


def test_fetch_keeps_nothing_that_fails_verification(
    zenodo: ZenodoServer, capsule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose md5 and size are right, but whose capsule does not verify."""
    receipt = run(capsule).receipt
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPRO_CACHE_DIR", str(cache))
    raw = bytearray(gzip.decompress(Path(receipt.capsule).read_bytes()))
    at = raw.index(b"values.csv") + 600  # inside a member's data: the manifest is now wrong
    raw[at] = raw[at] ^ 0x01
    tampered = gzip.compress(bytes(raw), mtime=0)
    record = zenodo.records[receipt.deposition_id]
    zenodo.record_files[receipt.deposition_id][record["files"][0]["key"]] = tampered
    md5 = hashlib.md5(tampered, usedforsecurity=False).hexdigest()
    record["files"][0].update(size=len(tampered), checksum=f"md5:{md5}")
    code, _out, err = cli("fetch", receipt.doi, "-o", str(tmp_path / "got"))
    assert code == 4, err
    _nothing_kept(cache, tmp_path / "got")
    # A cached copy that no longer verifies is not kept either.
    folder = cache / "zenodo" / f"{receipt.deposition_id}-{md5}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / capsule.name).write_bytes(tampered)
    code, _out, err = cli("fetch", receipt.doi, "-o", str(tmp_path / "got"))
    assert code == 4 and not (folder / capsule.name).exists()
    _nothing_kept(cache, tmp_path / "got")


def test_references_and_error_bodies_parse_in_every_form() -> None:
    assert parse_reference("https://zenodo.org/records/77").record_id == 77  # type: ignore[union-attr]
    assert parse_reference("https://zenodo.org/record/77?preview=1").record_id == 77  # type: ignore[union-attr]
    assert parse_reference("doi:10.5072/zenodo.9").doi == "10.5072/zenodo.9"  # type: ignore[union-attr]
    assert parse_reference("study.capsule.tgz") is None and parse_reference("123") is None
    today = b'{"status": 400, "message": "Validation error.", "errors": [{"field": "metadata.title", "messages": ["Required."]}]}'
    assert parse_error_body(today) == ("Validation error.", [("metadata.title", "Required.")])
    older = b'{"status": 400, "message": "Validation error.", "errors": [{"field": "x", "message": "Bad."}]}'
    assert parse_error_body(older) == ("Validation error.", [("x", "Bad.")])
    assert parse_error_body(b'{"errors": "Unknown field."}') == ("Unknown field.", [])
    assert parse_error_body(b'{"message": "Permission denied.", "status": 403}') == (
        "Permission denied.",
        [],
    )
    html = b"<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>"
    assert parse_error_body(html, "text/html") == ("504 Gateway Time-out", [])
    assert parse_error_body(b"") == ("(no message)", [])
