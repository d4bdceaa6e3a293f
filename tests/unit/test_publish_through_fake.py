"""The publish and fetch flows through a fake `ZenodoApi`, for what happens between two calls.

Only cases the local Zenodo-compatible server (tests/zenodo_server.py) cannot stage on
demand belong here: it answers each call by its rules, but cannot change the world between
two calls of one run. Everything else is tested against that server, in
tests/integration/test_publish.py.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from repro.capture.pipeline import CaptureOptions, capture
from repro.publish import PublishOptions, PublishResult, fetch_capsule, publish, resolve_target
from repro.publish.errors import DraftGoneError, MetadataMismatchError
from tests.unit.zenodo_fake import SITE, FakeZenodo

TOML = """\
[capsule]
title = "Tiny study"
authors = [{ name = "Doe, Jane", affiliation = "Test U" }]
license = "CC-BY-4.0"

[[data]]
path = "data"
"""


@pytest.fixture
def capsule(tmp_path: Path) -> Path:
    """An unsigned capsule (no key here: it is published unsigned, with a warning)."""
    project = tmp_path / "study"
    (project / "data").mkdir(parents=True)
    (project / "study.py").write_text("print('done')\n")
    (project / "data" / "values.csv").write_text("1 2 3 4\n")
    (project / "repro.toml").write_text(TOML)
    out = tmp_path / "pub" / "study.capsule.tgz"
    out.parent.mkdir()
    capture(CaptureOptions(project=project, output=out, execute=False, sign=False))
    return out


def run(capsule: Path, fake: FakeZenodo) -> PublishResult:
    opts = PublishOptions(
        capsule=capsule,
        target=resolve_target(zenodo_url=SITE),
        publish=True,
        today=date(2025, 1, 2),
    )
    return publish(opts, api=fake)


def journal_of(capsule: Path) -> dict[str, Any]:
    return json.loads(capsule.with_name(capsule.name + ".zenodo-journal.json").read_text())


def test_a_draft_discarded_between_two_steps_is_reported_gone_and_never_recreated(
    capsule: Path,
) -> None:
    fake = FakeZenodo()
    fake.after("update_metadata", fake.deps.clear)  # discarded on the website meanwhile
    with pytest.raises(DraftGoneError) as raised:
        run(capsule, fake)
    assert raised.value.exit_code == 1 and "zenodo-journal.json away" in raised.value.hint
    assert journal_of(capsule)["step"] == "described"
    with pytest.raises(DraftGoneError):  # the next run says the same, and creates nothing
        run(capsule, fake)
    assert fake.calls.count("create") == 1 and "publish" not in fake.calls


def test_a_draft_edited_between_the_put_and_the_read_back_is_not_published_until_sent_again(
    capsule: Path,
) -> None:
    fake = FakeZenodo()

    def edit_on_the_website() -> None:
        (dep,) = fake.deps.values()
        dep.metadata["title"] = "Edited on the website"

    fake.after("update_metadata", edit_on_the_website)
    with pytest.raises(MetadataMismatchError, match="title: sent 'Tiny study'"):
        run(capsule, fake)
    assert "publish" not in fake.calls
    assert journal_of(capsule)["step"] == "uploaded"  # the next run sends the metadata again
    result = run(capsule, fake)
    (dep,) = fake.deps.values()
    assert result.resumed and result.receipt.state == "published" and dep.submitted
    assert dep.metadata["title"] == "Tiny study"
    assert fake.calls.count("update_metadata") == 2 and fake.calls.count("upload") == 1


def test_a_publish_by_someone_else_just_before_ours_is_adopted_with_the_registered_doi(
    capsule: Path,
) -> None:
    fake = FakeZenodo()

    def published_elsewhere() -> None:  # and Zenodo minted a DOI other than the reserved one
        (dep,) = fake.deps.values()
        dep.submitted, dep.doi = True, "10.5281/zenodo.999"

    fake.before("publish", published_elsewhere)
    result = run(capsule, fake)
    assert fake.calls.count("publish") == 1  # ours was answered 404 and not repeated
    assert result.receipt.state == "published" and result.receipt.doi == "10.5281/zenodo.999"
    (dep,) = fake.deps.values()
    reserved = dep.metadata["prereserve_doi"]["doi"]
    assert f"Zenodo registered 10.5281/zenodo.999, but the capsule carries {reserved}" in (
        result.warnings
    )


def test_fetch_warns_when_the_record_is_not_the_doi_stamped_in_the_capsule(
    capsule: Path, tmp_path: Path
) -> None:
    fake = FakeZenodo()
    published = run(capsule, fake).receipt
    fake.deps[published.deposition_id].doi = "10.5281/zenodo.999"  # re-registered elsewhere
    record_url = f"{SITE}/records/{published.deposition_id}"
    first = fetch_capsule(record_url, dest_dir=tmp_path / "got", api=fake)
    again = fetch_capsule(record_url, dest_dir=tmp_path / "got", api=fake)
    assert first.path.read_bytes() == Path(published.capsule).read_bytes()
    assert first.report is not None and first.md5 == published.md5
    assert first.warnings == [
        f"the capsule says its DOI is {published.doi}, but it was fetched from 10.5281/zenodo.999"
    ]
    assert again.cached and fake.calls.count("download") == 1
