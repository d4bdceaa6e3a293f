"""Signed capsules: keys, the trust store, verify's three states and its policies."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from repro.capsule.layout import SIGNATURE_NAME
from repro.capsule.manifest import canonical_json
from repro.capsule.reader import read_capsule
from repro.capsule.restamp import restamp_capsule
from repro.errors import SignatureError
from repro.hashing import sha256_bytes
from repro.sign import check_signature, load_private_key, sign_digest
from tests.capsules import Members, rewrite
from tests.conftest import run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "p"
    p.mkdir()
    (p / "a.py").write_text("print(1)\n")
    return p


def keygen(*args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    result = run_cli("keys", "generate", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def verify_json(capsule: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = run_cli("verify", str(capsule), "--json", *flags, env=env)
    return result.returncode, json.loads(result.stdout)


def test_generate_writes_a_private_key_only_the_owner_can_read(tmp_path: Path) -> None:
    info = keygen()
    private = Path(info["path"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    exported = run_cli("keys", "export")
    assert exported.returncode == 0 and exported.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    again = run_cli("keys", "generate")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_capture_signs_by_default_and_verify_reports_each_state(
    project: Path, tmp_path: Path
) -> None:
    unsigned = tmp_path / "unsigned.tgz"
    assert run_cli("capture", str(project), "-o", str(unsigned), "--no-run").returncode == 0
    code, doc = verify_json(unsigned)
    assert code == 0 and doc["signature"]["state"] == "unsigned"
    code, doc = verify_json(unsigned, "--require-signed")
    assert code == 4 and "unsigned" in doc["error"]

    key = keygen("--name", "alice")
    signed = tmp_path / "signed.tgz"
    captured = run_cli("capture", str(project), "-o", str(signed), "--no-run", "--json")
    assert json.loads(captured.stdout)["signed_by"] == key["keyid"]
    code, doc = verify_json(signed, "--require-trusted")
    assert code == 0 and doc["signature"]["state"] == "trusted"  # your own key
    assert doc["signature"]["trusted_name"] == "alice (your own key)"

    # A reviewer's machine: a fresh config dir, no keys, nothing trusted yet.
    reviewer = {"REPRO_CONFIG_DIR": str(tmp_path / "reviewer")}
    code, doc = verify_json(signed, env=reviewer)
    assert code == 0 and doc["signature"]["state"] == "unknown"
    assert doc["signature"]["keyid"] == key["keyid"]
    code, doc = verify_json(signed, "--require-trusted", env=reviewer)
    assert code == 4 and "not signed by a trusted key" in doc["error"]

    public = tmp_path / "alice.pub"
    public.write_text(run_cli("keys", "export", "--name", "alice").stdout)
    trusted = run_cli("keys", "trust", str(public), "--name", "Alice Author", env=reviewer)
    assert trusted.returncode == 0, trusted.stderr
    code, doc = verify_json(signed, "--require-trusted", env=reviewer)
    assert code == 0 and doc["signature"]["trusted_name"] == "Alice Author"
    human = run_cli("verify", str(signed), env=reviewer)
    assert "signed by a trusted key: Alice Author" in human.stdout
    assert run_cli("keys", "untrust", "Alice Author", env=reviewer).returncode == 0
    assert verify_json(signed, env=reviewer)[1]["signature"]["state"] == "unknown"

    no_sign = tmp_path / "nosign.tgz"
    assert (
        run_cli("capture", str(project), "-o", str(no_sign), "--no-run", "--no-sign").returncode
        == 0
    )
    assert verify_json(no_sign)[1]["signature"]["state"] == "unsigned"


def test_sign_without_a_key_is_an_error(project: Path, tmp_path: Path) -> None:
    result = run_cli("capture", str(project), "-o", str(tmp_path / "x.tgz"), "--no-run", "--sign")
    assert result.returncode == 1 and "repro keys generate" in result.stderr
    assert not (tmp_path / "x.tgz").exists()


def test_encrypted_key_takes_the_passphrase_from_the_environment(
    project: Path, tmp_path: Path
) -> None:
    keygen("--passphrase", env={"REPRO_KEY_PASSPHRASE": "correct horse"})
    out = tmp_path / "s.tgz"
    ok = run_cli(
        "capture",
        str(project),
        "-o",
        str(out),
        "--no-run",
        env={"REPRO_KEY_PASSPHRASE": "correct horse"},
    )
    assert ok.returncode == 0, ok.stderr
    assert verify_json(out, "--require-signed")[0] == 0
    wrong = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "w.tgz"),
        "--no-run",
        env={"REPRO_KEY_PASSPHRASE": "wrong"},
    )
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert "correct horse" not in wrong.stderr + wrong.stdout
    missing = run_cli("capture", str(project), "-o", str(tmp_path / "m.tgz"), "--no-run")
    assert missing.returncode == 1 and "REPRO_KEY_PASSPHRASE" in missing.stderr


def _swap_signature(new: bytes) -> object:
    def mutate(members: Members) -> None:
        for i, (info, _data) in enumerate(members):
            if info.name == SIGNATURE_NAME:
                members[i] = (info, new)

    return mutate


def test_a_tampered_or_transplanted_signature_is_exit_4(project: Path, tmp_path: Path) -> None:
    keygen()
    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    assert run_cli("capture", str(project), "-o", str(a), "--no-run").returncode == 0
    (project / "a.py").write_text("print(2)\n")
    assert run_cli("capture", str(project), "-o", str(b), "--no-run").returncode == 0
    sig_a = read_capsule(a).signature
    assert sig_a is not None

    envelope = json.loads(sig_a)
    raw = bytearray(__import__("base64").b64decode(envelope["signatures"][0]["sig"]))
    raw[0] ^= 1
    envelope["signatures"][0]["sig"] = __import__("base64").b64encode(bytes(raw)).decode()
    flipped = rewrite(a, tmp_path / "flipped.tgz", _swap_signature(canonical_json(envelope)))  # type: ignore[arg-type]
    code, doc = verify_json(flipped)
    assert code == 4 and "bad signature" in doc["error"]

    transplanted = rewrite(b, tmp_path / "transplant.tgz", _swap_signature(sig_a))  # type: ignore[arg-type]
    code, doc = verify_json(transplanted)
    assert code == 4 and "another manifest" in doc["error"]

    garbage = rewrite(a, tmp_path / "garbage.tgz", _swap_signature(b"{not json"))  # type: ignore[arg-type]
    assert verify_json(garbage)[0] == 4


def test_an_attacker_who_edits_and_re_signs_is_only_an_unknown_key(
    project: Path, tmp_path: Path
) -> None:
    keygen("--name", "author")
    original = tmp_path / "o.tgz"
    assert run_cli("capture", str(project), "-o", str(original), "--no-run").returncode == 0
    mallory = {"REPRO_CONFIG_DIR": str(tmp_path / "mallory")}
    keygen("--name", "mallory", env=mallory)
    key = load_private_key(tmp_path / "mallory" / "keys" / "mallory.key")
    forged = tmp_path / "forged.tgz"
    restamp_capsule(original, forged, metadata={"title": "Forged results"}, key=key)
    code, doc = verify_json(forged)  # the author's machine
    assert code == 0 and doc["signature"]["state"] == "unknown"
    assert verify_json(forged, "--require-trusted")[0] == 4


def test_restamp_adds_a_doi_and_re_signs_in_one_call(project: Path, tmp_path: Path) -> None:
    keygen()
    src, dest = tmp_path / "src.tgz", tmp_path / "published.tgz"
    assert run_cli("capture", str(project), "-o", str(src), "--no-run").returncode == 0
    key = load_private_key(Path(os.environ["REPRO_CONFIG_DIR"]) / "keys" / "default.key")
    restamp_capsule(src, dest, metadata={"doi": "10.5281/zenodo.123"}, key=key)
    published = read_capsule(dest)
    assert published.manifest.metadata.doi == "10.5281/zenodo.123"
    assert check_signature(published.capsule_id, published.signature).state == "trusted"
    old = read_capsule(src)
    assert old.manifest.files == published.manifest.files
    with pytest.raises(SignatureError):
        check_signature(published.capsule_id, old.signature)
    assert sign_digest(sha256_bytes(published.manifest_bytes), key) == published.signature
