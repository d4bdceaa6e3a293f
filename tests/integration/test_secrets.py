"""No secrets in capsules: planted in every form, none may reach the capsule's bytes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import git, run_cli

# Fake but well-formed secrets, assembled so this file holds none of them literally.
PRIVATE_KEY = (
    "-----BEGIN "
    + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
)
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLQ"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITLAB = "glpat-" + "xYz12345678901234567"
PYPI = "pypi-AgEIcHlwaS5vcmc" + "A" * 60
ZENODO = "Zq" + "9" * 58
ENV_VALUE = "s3cr3t-" + "value-from-env"

SECRET_FILES = {
    ".env": f"ZENODO_API_TOKEN={ZENODO}\n",
    ".env.local": "DB_PASSWORD=hunter2hunter2\n",
    "id_rsa": PRIVATE_KEY,
    "keys/server.pem": PRIVATE_KEY,
    "keys/tls.key": PRIVATE_KEY,
    ".netrc": "machine zenodo.org login me password hunter2hunter2\n",
    ".pypirc": f"[pypi]\npassword = {PYPI}\n",
    ".aws/credentials": f"[default]\naws_access_key_id = {AWS_KEY}\n",
    "credentials.json": json.dumps({"token": GITHUB}),
    "vault.kdbx": "KDBX-binary-ish",
    ".git-credentials": f"https://me:{GITHUB}@github.com\n",
}


def all_secret_strings() -> list[str]:
    return [
        PRIVATE_KEY.splitlines()[1],
        AWS_KEY,
        GITHUB,
        GITLAB,
        PYPI,
        ZENODO,
        ENV_VALUE,
        "hunter2hunter2",
        "KDBX-binary-ish",
    ]


def unpacked_bytes(capsule: Path) -> bytes:
    return gzip.decompress(capsule.read_bytes())


def test_secret_files_are_left_out_reported_and_absent_from_the_bytes(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "analyse.py").write_text("print('clean')\n")
    (project / "public.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    for rel, text in SECRET_FILES.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    git(project, "init", "-q")
    git(project, "remote", "add", "origin", f"https://me:{GITHUB}@github.com/lab/p.git")
    out = tmp_path / "c.tgz"
    result = run_cli(
        "capture",
        str(project),
        "-o",
        str(out),
        "--json",
        "--run",
        "python analyse.py",
        env={"MY_API_TOKEN": ENV_VALUE},
    )
    assert result.returncode == 0, result.stderr
    excluded = json.loads(result.stdout)["excluded"]
    for rel in SECRET_FILES:
        assert any(e.startswith(f"{rel} (") for e in excluded), rel
    assert not any(e.startswith("public.pem") for e in excluded)  # a certificate is not a secret
    content = unpacked_bytes(out)
    for secret in all_secret_strings():
        assert secret.encode() not in content, secret
    assert b"public.pem" in content


@pytest.mark.parametrize(
    ("rel", "text", "kind"),
    [
        ("src/deploy.py", f"KEY = '''{PRIVATE_KEY}'''\n", "private key"),
        ("data/table.csv", f"id,key\n1,{AWS_KEY}\n", "AWS access key"),
        (
            "analysis.ipynb",
            json.dumps({"cells": [{"outputs": [{"text": f"token {GITHUB}"}]}]}),
            "GitHub token",
        ),
        ("ci.py", f"TOKEN = '{GITLAB}'\n", "GitLab token"),
        ("upload.sh", f"twine upload -p {PYPI} dist/*\n", "PyPI token"),
        ("publish.py", f"zenodo_token = '{ZENODO}'\n", "Zenodo token"),
        ("data/notes.txt", f"line one\nthe value: {ENV_VALUE}\n", "secret environment variable"),
    ],
)
def test_a_planted_secret_fails_the_capture_naming_file_and_line(
    tmp_path: Path, rel: str, text: str, kind: str
) -> None:
    project = tmp_path / "p"
    (project / rel).parent.mkdir(parents=True, exist_ok=True)
    (project / rel).write_text(text)
    (project / "repro.toml").write_text(
        '[[data]]\npath = "data"\n' if rel.startswith("data") else ""
    )
    if not rel.startswith("data"):
        (project / "data").mkdir()
    env = {"MY_API_TOKEN": ENV_VALUE}
    result = run_cli("capture", str(project), "-o", str(tmp_path / "c.tgz"), "--no-run", env=env)
    assert result.returncode == 1
    assert f"possible secret in {rel}:" in result.stderr and kind in result.stderr
    for secret in all_secret_strings():
        assert secret not in result.stderr + result.stdout  # masked in the message
    assert "--allow-secret" in result.stderr
    assert not (tmp_path / "c.tgz").exists()
    allowed = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        "--no-run",
        "--allow-secret",
        rel,
        env=env,
    )
    assert allowed.returncode == 0, allowed.stderr


def test_a_secret_printed_by_a_run_fails_the_capture(tmp_path: Path) -> None:
    """Runs see no variable of the user's unless passed (--pass-env); one passed and
    printed is caught in the run's output."""
    project = tmp_path / "p"
    project.mkdir()
    run = ["--run", 'echo "debug: $MY_API_TOKEN"']
    env = {"MY_API_TOKEN": ENV_VALUE}
    unpassed = run_cli("capture", str(project), "-o", str(tmp_path / "u.tgz"), *run, env=env)
    assert unpassed.returncode == 0, unpassed.stderr
    assert ENV_VALUE.encode() not in unpacked_bytes(tmp_path / "u.tgz")
    result = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        *run,
        "--pass-env",
        "MY_API_TOKEN",
        env=env,
    )
    assert result.returncode == 1
    assert "possible secret in stdout of run run [_]" in result.stderr
    assert ENV_VALUE not in result.stderr
    assert not (tmp_path / "c.tgz").exists()


def test_only_allowlisted_variables_are_recorded_and_never_secret_ones(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "repro.toml").write_text('[environment]\nvariables = ["OMP_NUM_THREADS"]\n')
    out = tmp_path / "c.tgz"
    env = {"OMP_NUM_THREADS": "4", "UNLISTED_SETTING": "do-not-record", "MY_API_TOKEN": ENV_VALUE}
    assert run_cli("capture", str(project), "-o", str(out), "--no-run", env=env).returncode == 0
    manifest = json.loads(run_cli("inspect", str(out), "--json").stdout)["manifest"]
    assert manifest["environment"]["variables"] == {"OMP_NUM_THREADS": "4"}
    assert b"do-not-record" not in unpacked_bytes(out)
    (project / "repro.toml").write_text('[environment]\nvariables = ["MY_API_TOKEN"]\n')
    refused = run_cli(
        "capture", str(project), "-o", str(out.with_name("d.tgz")), "--no-run", env=env
    )
    assert refused.returncode == 1 and "looks like a secret" in refused.stderr


def test_secrets_in_commands_and_recorded_variables_never_reach_the_manifest(
    tmp_path: Path,
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    result = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        "--no-run",
        "--run",
        f"curl -H 'Authorization: {GITHUB}' https://example.org",
    )
    assert result.returncode == 1 and "possible secret in " in result.stderr
    assert "GitHub token" in result.stderr and "run command" in result.stderr
    assert GITHUB not in result.stderr and not (tmp_path / "c.tgz").exists()
    (project / "repro.toml").write_text('[environment]\nvariables = ["AWS_SECRET_ACCESS_KEY"]\n')
    refused = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        "--no-run",
        env={"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"},
    )
    assert refused.returncode == 1 and "looks like a secret" in refused.stderr


# --- issue 16, defect 10: the forms the attack campaign got through ----------------------

DB_PASSWORD = "Db-" + "pw-4711"
BEARER = "Zq" + "7x9K" * 15


@pytest.mark.parametrize(
    ("rel", "text", "kind"),
    [
        ("db.py", f"URL = 'postgres://u:{DB_PASSWORD}@db.example.org/x'\n", "password in a URL"),
        ("up.py", f"H = {{'Authorization': 'Bearer {BEARER}'}}\n", "bearer token"),
        ("load.sh", f"export PGPASSWORD={DB_PASSWORD}\npsql -c 'select 1'\n", "password"),
    ],
)
def test_credentials_in_urls_headers_and_assignments_fail_the_capture(
    tmp_path: Path, rel: str, text: str, kind: str
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / rel).write_text(text)
    result = run_cli("capture", str(project), "-o", str(tmp_path / "c.tgz"), "--no-run")
    assert result.returncode == 1 and f"possible secret in {rel}:" in result.stderr
    assert kind in result.stderr
    assert DB_PASSWORD not in result.stderr and BEARER not in result.stderr
    assert not (tmp_path / "c.tgz").exists()


def test_connection_strings_short_passwords_and_remotes_never_reach_the_capsule(
    tmp_path: Path,
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "analyse.py").write_text("print('clean')\n")
    git(project, "init", "-q")
    git(project, "remote", "add", "origin", f"me:{DB_PASSWORD}@git.example.org:lab/p.git")
    env = {"DATABASE_URL": f"postgres://u:{DB_PASSWORD}@db/x", "PGPASSWORD": "hu7ter"}
    (project / "repro.toml").write_text('[environment]\nvariables = ["DATABASE_URL"]\n')
    refused = run_cli("capture", str(project), "-o", str(tmp_path / "c.tgz"), "--no-run", env=env)
    assert refused.returncode == 1 and "the value of DATABASE_URL holds a secret" in refused.stderr
    assert DB_PASSWORD not in refused.stderr + refused.stdout
    (project / "repro.toml").write_text("")
    printed = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        "--run",
        'echo "pw: $PGPASSWORD"',
        "--pass-env",
        "PGPASSWORD",
        env=env,
    )
    assert printed.returncode == 1 and "possible secret in stdout of run" in printed.stderr
    printed_url = run_cli(
        "capture",
        str(project),
        "-o",
        str(tmp_path / "c.tgz"),
        "--run",
        'echo "$DATABASE_URL"',
        "--pass-env",
        "DATABASE_URL",
        env=env,
    )
    assert printed_url.returncode == 1 and "possible secret in stdout of run" in printed_url.stderr
    out = tmp_path / "c.tgz"
    ok = run_cli("capture", str(project), "-o", str(out), "--run", "python analyse.py", env=env)
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads(run_cli("inspect", str(out), "--json").stdout)["manifest"]
    assert manifest["source"]["remote"] == "me@git.example.org:lab/p.git"
    content = unpacked_bytes(out)
    assert DB_PASSWORD.encode() not in content and b"hu7ter" not in content
