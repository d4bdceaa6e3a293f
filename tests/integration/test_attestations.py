"""Replay attestations end to end: real keys, real Ed25519, the real CLI; the replay history;
the badge in headless Chromium (issue 18). Publishing them and concept DOIs are in
test_attestations_zenodo.py."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from repro import history
from repro.attestation.attest import sign_statement
from repro.attestation.check import read_attestation
from repro.attestation.statement import Statement
from repro.sign import generate_key, load_private_key
from tests.conftest import ROOT, require_service, run_cli


def capture(project: Path, out: Path) -> Path:
    result = run_cli("capture", str(project), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def cli_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = run_cli(*args, "--json", env=env, timeout=900)
    assert "Traceback" not in result.stderr, result.stderr
    try:
        return result.returncode, json.loads(result.stdout), result.stderr
    except json.JSONDecodeError:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}") from None


def schema(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "schemas" / name).read_text())  # type: ignore[no-any-return]


def _payload(att: Path) -> dict[str, Any]:
    envelope = json.loads(att.read_text())
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def _resign(att: Path, dest: Path, key_path: Path, change: Any) -> Path:
    """The attestation's statement, changed by `change(dict)`, signed by another key."""
    raw = _payload(att)
    change(raw)
    statement = Statement.model_validate(raw)
    dest.write_bytes(sign_statement(statement, load_private_key(key_path)))
    return dest


@pytest.fixture
def attested(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> tuple[Path, Path, dict[str, Any]]:
    """A capsule of the tiny study, replayed locally with --attest and --report."""
    generate_key()
    capsule = capture(tiny_study, tmp_path / "tiny.capsule.tgz")
    att = tmp_path / "out" / "tiny.attestation.json"
    code, report, err = cli_json(
        "replay", str(capsule), "--target", "local", "--attest", str(att),
        "--report", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert code == 0, err
    assert report["attestation"] == str(att)
    return capsule, att, report


def test_attestation_round_trip_with_real_keys(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    capsule, att, report = attested
    statement = _payload(att)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://repro.dev/attestation/replay/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    import hashlib

    assert subjects == {
        "repro.json": report["capsule_id"],
        capsule.name: hashlib.sha256(capsule.read_bytes()).hexdigest(),
    }
    predicate = statement["predicate"]
    assert predicate["verdict"] == "reproduced" and predicate["counts"] == {"identical": 4}
    outputs = [o for p in predicate["points"] for o in p["outputs"]]
    assert {o["result"]["verdict"] for o in outputs} == {"identical"}
    rules = {o["result"]["path"]: o["rule"] for o in outputs}
    assert rules["results/metrics.json"]["rtol"] == 1e-9  # the rule applied
    assert predicate["replayer"]["target"] == "local"
    assert predicate["replayer"]["platform"]["python_version"]
    assert predicate["resources"]["duration_s"] > 0 and len(predicate["resources"]["runs"]) == 4
    assert predicate["started"] <= predicate["finished"]
    jsonschema.validate(statement, schema("attestation-statement.schema.json"))

    code, out, err = cli_json("verify-attestation", str(att), "--capsule", str(capsule))
    assert code == 0, err
    jsonschema.validate(out, schema("verify-attestation.schema.json"))
    (checked,) = out["attestations"]
    assert checked["trust"] == "trusted" and checked["capsule_matches"] is True
    assert out["capsules"][0]["summary"] == "reproduced once by 1 key on 1 platform"
    human = run_cli("verify-attestation", str(att), "--require-trusted")
    assert human.returncode == 0, human.stderr
    assert "reproduced" in human.stdout and "your own key" in human.stdout

    # The HTML report shows the attestation and its badge.
    page = (tmp_path / "report.html").read_text()
    assert '<h2 id="attestation">Attestation</h2>' in page and "<svg" in page and "SHA256:" in page


def test_a_bare_attest_writes_next_to_the_working_directory(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    generate_key()
    capsule = capture(tiny_study, tmp_path / "paper.capsule.tgz")
    work = tmp_path / "here"
    work.mkdir()
    result = run_cli(
        "replay", "--attest", str(capsule), "--target", "local", "--run", "analyse", cwd=work
    )  # `--attest CAPSULE`: the capsule is not taken for the attestation file
    assert result.returncode == 0, result.stderr
    assert (work / "paper.attestation.json").is_file()
    assert "attestation: " in result.stdout


def test_tampering_subject_and_trust(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path, tiny_study: Path
) -> None:
    _, att, _ = attested
    # One byte of the predicate changed: the signature no longer holds (exit 4).
    envelope = json.loads(att.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    at = payload.index(b'"verdict":"reproduced"') + len(b'"verdict":"')
    payload[at] = ord("R")
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(envelope))
    result = run_cli("verify-attestation", str(tampered))
    assert result.returncode == 4
    assert "bad signature" in result.stderr and "hint:" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1

    # A subject that does not match the capsule given.
    (tiny_study / "data" / "values.csv").write_text("5 6 7\n")
    other = capture(tiny_study, tmp_path / "other.capsule.tgz")
    result = run_cli("verify-attestation", str(att), "--capsule", str(other))
    assert result.returncode == 4 and "is about capsule" in result.stderr
    assert "hint:" in result.stderr

    # A key not in the trust store: unknown, refused only with --require-trusted.
    stranger = {"REPRO_CONFIG_DIR": str(tmp_path / "stranger-config")}
    code, out, _ = cli_json("verify-attestation", str(att), env=stranger)
    assert code == 0 and out["attestations"][0]["trust"] == "unknown"
    result = run_cli("verify-attestation", str(att), "--require-trusted", env=stranger)
    assert result.returncode == 4 and "not in the trust store" in result.stderr
    assert "repro keys trust" in result.stderr


def test_bad_input_gets_one_line_errors_with_hints(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, att, _ = attested
    cases: dict[str, tuple[bytes, str]] = {
        "truncated.json": (att.read_bytes()[:100], "not a DSSE envelope"),
        "notjson.json": (b"hello", "not a DSSE envelope"),
    }
    # A correctly signed in-toto statement of another predicate type.
    raw = _payload(att)
    raw["predicateType"] = "https://slsa.dev/provenance/v1"
    from repro.attestation.statement import PAYLOAD_TYPE
    from repro.sign import default_key_path, key_id, pae, raw_public

    key_path = default_key_path()
    assert key_path is not None
    key = load_private_key(key_path)
    payload = json.dumps(raw).encode()
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode(),
                "publicKey": base64.b64encode(raw_public(key.public_key())).decode(),
            }
        ],
    }
    cases["slsa.json"] = (json.dumps(envelope).encode(), "predicate type")
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        result = run_cli("verify-attestation", str(tmp_path / name))
        assert result.returncode == 4, (name, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and words in errors[0], (name, result.stderr)
        assert "hint:" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("verify-attestation", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "attestation not found" in missing.stderr
    code, doc, _ = cli_json("verify-attestation", str(tmp_path / "slsa.json"))
    assert code == 4 and doc["kind"] == "AttestationError" and doc["hint"]


def test_attest_without_a_key_fails_before_replaying(
    tiny_study: Path, offline_index: Path, tmp_path: Path
) -> None:
    capsule = capture(tiny_study, tmp_path / "t.tgz")
    result = run_cli("replay", str(capsule), "--target", "local", "--attest")
    assert result.returncode == 1 and "repro keys generate" in result.stderr
    assert history.read().entries == []  # nothing ran


def test_a_not_reproduced_replay_attests_so(tmp_path: Path) -> None:
    generate_key()
    project = tmp_path / "study"
    project.mkdir()
    (project / "run.py").write_text(
        "import json, random\njson.dump({'x': random.random()}, open('out.json', 'w'))\n"
    )
    (project / "repro.toml").write_text(
        '[[runs]]\nname = "main"\ncommand = "python run.py"\noutputs = ["out.json"]\n'
    )
    capsule = capture(project, tmp_path / "u.tgz")
    att = tmp_path / "u.attestation.json"
    code, report, _ = cli_json("replay", str(capsule), "--target", "local", "--attest", str(att))
    assert code == 3 and not report["reproduced"]
    predicate = _payload(att)["predicate"]
    assert predicate["verdict"] == "not_reproduced"
    (output,) = predicate["points"][0]["outputs"]
    assert output["result"]["verdict"] == "different"
    code, out, _ = cli_json("verify-attestation", str(att), "--capsule", str(capsule))
    assert code == 3 and not out["reproduced"]
    assert out["capsules"][0]["summary"] == "never reproduced; not reproduced once"
    entries = history.read().entries
    assert [e.verdict for e in entries] == ["not_reproduced"]
    assert entries[0].attestation == str(att.resolve())


def test_several_attestations_summarise(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    capsule, att, _ = attested
    keys = Path(os.environ["REPRO_CONFIG_DIR"]) / "keys"
    second = generate_key("colleague")

    def on_mac(raw: dict[str, Any]) -> None:
        raw["predicate"]["replayer"]["platform"].update(system="Darwin", machine="arm64")
        raw["predicate"]["replayer"]["platform"]["distribution"] = None

    a2 = _resign(att, tmp_path / "a2.json", keys / "default.key", on_mac)
    a3 = _resign(att, tmp_path / "a3.json", second.path, on_mac)
    code, out, err = cli_json(
        "verify-attestation", str(att), str(a2), str(a3), "--capsule", str(capsule)
    )
    assert code == 0, err
    (summary,) = out["capsules"]
    assert summary["summary"] == "reproduced 3 times by 2 keys on 2 platforms"
    assert (summary["reproduced"], summary["keys"], summary["platforms"]) == (3, 2, 2)
    human = run_cli("verify-attestation", str(att), str(a2), str(a3))
    assert "reproduced 3 times by 2 keys on 2 platforms" in human.stdout


def test_history_lists_replays_and_survives_concurrent_writers(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    capsule, att, report = attested
    code, out, _ = cli_json("history")
    assert code == 0
    jsonschema.validate(out, schema("history.schema.json"))
    (entry,) = out["entries"]
    assert entry["capsule_id"] == report["capsule_id"] and entry["verdict"] == "reproduced"
    assert entry["target"] == "local" and entry["attestation"] == str(att.resolve())
    assert entry["report"] == str((tmp_path / "report.html").resolve())
    assert len(entry["host_fingerprint"]) == 16
    code, out, _ = cli_json("history", str(capsule))
    assert code == 0 and len(out["entries"]) == 1
    code, out, _ = cli_json("history", report["capsule_id"][:12])
    assert code == 0 and len(out["entries"]) == 1
    code, out, _ = cli_json("history", "10.5281/zenodo.1")
    assert code == 0 and out["entries"] == []

    # Writers in several processes and threads at once: no line lost or interleaved.
    base = history.read().entries[0]
    script = (
        "import sys\nfrom repro import history\n"
        f"entry = history.HistoryEntry.model_validate_json({base.model_dump_json()!r})\n"
        "for i in range(40):\n"
        "    history.append(entry.model_copy(update={'title': f'{sys.argv[1]}-{i}' + 'x' * 3000}))\n"
    )
    procs = [
        subprocess.Popen(
            [shutil.which("python") or "python", "-c", script, f"p{n}"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for n in range(4)
    ]

    def writer(n: int) -> None:
        for i in range(40):
            history.append(base.model_copy(update={"title": f"t{n}-{i}"}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    after = history.read()
    assert after.skipped == 0 and len(after.entries) == 1 + 7 * 40
    titles = {e.title.rstrip("x") for e in after.entries[1:]}
    assert len(titles) == 7 * 40


def test_badge_renders_in_chromium(
    attested: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    require_service(chromium is not None, "chromium")
    assert chromium is not None
    _, att, _ = attested
    badge = tmp_path / "badge.svg"
    result = run_cli("verify-attestation", str(att), "--badge", str(badge))
    assert result.returncode == 0, result.stderr
    checked = read_attestation(att)
    day = checked.statement.predicate.finished[:10]
    flags = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*flags, "--dump-dom", badge.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    # Parsed as SVG (no XML error page), and the text is the attestation's.
    assert "<svg" in dom.stdout and "error on line" not in dom.stdout
    assert f"reproduced {day} · SHA256:{checked.keyid[:8]}" in dom.stdout
    page = tmp_path / "badge.html"
    page.write_text(f'<!DOCTYPE html><body style="margin:0"><img src="{badge.name}"></body>')
    shot = tmp_path / "badge.png"
    run = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=400,40", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height) or []
    green = sum(n for n, c in colours if c == (0x2E, 0x7D, 0x32))
    grey = sum(n for n, c in colours if c == (0x55, 0x55, 0x55))
    light = sum(n for n, (r, g, b) in colours if min(r, g, b) > 180)
    assert green > 500 and grey > 100, "the badge did not render"
    assert light > 20, "no text drawn on the badge"
