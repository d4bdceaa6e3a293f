"""The secret scanner itself: chunked scanning finds tokens across chunk boundaries, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.capture import secret_scan as secrets
from repro.capture.secret_scan import SecretScanner

AWS = "AKIA" + "ABCDEFGHIJKLMNOP"
GITLAB = "glpat-" + "abcdefghij0123456789"


def test_tokens_across_chunk_boundaries_are_found_once_with_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "SCAN_CHUNK", 1000)
    monkeypatch.setattr(secrets, "OVERLAP", 200)
    lines = ["pad"] * 248 + [f"key={AWS}"] + ["row"] * 600 + [f"token {GITLAB}", "end"]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    text = path.read_bytes()
    assert text.index(AWS.encode()) < 1000 < text.index(AWS.encode()) + len(AWS)  # straddles
    hits = SecretScanner(environ={}).scan_file(path, "data.csv")
    assert [(h.line, h.kind) for h in hits] == [(249, "AWS access key"), (850, "GitLab token")]
    assert all(AWS not in h.masked and GITLAB not in h.masked for h in hits)


def test_binary_files_are_not_scanned_and_values_of_secret_variables_are(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\0\1" + AWS.encode())
    scanner = SecretScanner(environ={"MY_SERVICE_TOKEN": "tok-1234567890", "HOME": "/root/home"})
    assert scanner.scan_file(binary, "blob.bin") == []
    text = tmp_path / "log.txt"
    text.write_text("home is /root/home\nsent tok-1234567890\n")
    (hit,) = scanner.scan_file(text, "log.txt")
    assert hit.line == 2 and hit.kind == "value of a secret environment variable"


# --- the forms of issue 16, defect 10: each one found, ordinary code never ----------------

ZENODO = "Zq9" + "x7Lk2" * 12  # a Zenodo-like token, assembled so this file holds none
PASSWORD = "hunter2" + "Pass!"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"DATABASE_URL=postgres://u:{PASSWORD}@db.example.org/x", "password in a URL"),
        (
            f"engine = create_engine('mysql+pymysql://root:{PASSWORD}@localhost/db')",
            "password in a URL",
        ),
        (f"redis://:{PASSWORD}@cache:6379/0", "password in a URL"),
        (f"amqp://guest:{PASSWORD}@[::1]:5672/", "password in a URL"),
        (f'headers = {{"Authorization": "Bearer {ZENODO}"}}', "bearer token"),
        (f"curl -H 'authorization: bearer {ZENODO}' https://zenodo.org/api", "bearer token"),
        ("-H 'Authorization: Basic dXNlcjpodW50ZXIyUGFzcyE='", "basic authorization"),
        (f"Authorization: token {ZENODO}", "authorization token"),
        (f"export PGPASSWORD={PASSWORD}", "password assignment"),
        (f"PGPASSWORD='{PASSWORD}' psql -h db", "password assignment"),
        (f"MYSQL_PWD={PASSWORD} mysql", "password assignment"),
        (f'DB_PASS = "{PASSWORD}"', "password assignment"),
        (f'password = "{PASSWORD}"', "password assignment"),
        (f'conn = connect(host="db", password="{PASSWORD}")', "password assignment"),
        (f'{{"api_key": "{ZENODO[:24]}"}}', "password assignment"),
        (f"apiKey: '{ZENODO[:24]}'", "password assignment"),
        (f"client_secret: {ZENODO[:24]}", "password assignment"),
        (f"AWS_SECRET_ACCESS_KEY={ZENODO[:40]}", "password assignment"),
        (f"my-tool --token={ZENODO[:30]}", "password assignment"),
    ],
)
def test_every_documented_form_of_a_credential_is_found(text: str, kind: str) -> None:
    hits = SecretScanner(environ={}).scan_bytes(f"# config\n{text}\n".encode(), "f.py")
    assert [h.kind for h in hits] == [kind] and hits[0].line == 2
    assert PASSWORD not in hits[0].masked and ZENODO[:12] not in hits[0].masked


ORDINARY = """\
import os, getpass
from sqlalchemy import create_engine

password = os.environ["PGPASSWORD"]
password = getpass.getpass()
token: str | None = None
token = tokens[0]
def login(user: str, password: str = "") -> None: ...
api_key = os.getenv("API_KEY")
secret = settings.SECRET
TOKEN_ENV = "ZENODO_API_TOKEN"
token_variable = "ZENODO_SANDBOX_API_TOKEN"
PASSWORD_FIELD = "password"
engine = create_engine(f"postgresql://{user}:{password}@{host}/db")
url = "postgres://user:${PGPASSWORD}@localhost/db"
dsn = "postgres://user:password@localhost/db"  # documentation form
dsn2 = "postgres://scott:<password>@localhost/db"
headers = {"Authorization": f"Bearer {token}"}
headers = {"Authorization": "Bearer " + token}
curl -H "Authorization: Bearer $ZENODO_API_TOKEN" https://zenodo.org/api/deposit/depositions
Basic authentication is described in RFC 7617; bearer tokens in RFC 6750.
sort_key = "name-2"
cache_key = "results-v1"
primaryKey: "id_1"
bypass = "x1-y2"
first_pass: 3
credentials = "keys/service-account.json"
secret_file = "secret.txt"
key: value
pwd = "/home/user"
PWD=/home/user/project
token = "[CLS]"
version: 1.2.3
password: Optional[str]
https://example.org/a?b=c@d
git@github.com:lab/study.git
"""


def test_ordinary_code_and_documentation_are_not_flagged() -> None:
    assert SecretScanner(environ={}).scan_bytes(ORDINARY.encode(), "analysis.py") == []


def test_the_repositorys_own_studies_and_test_projects_have_no_finding() -> None:
    """The false-positive measurement, kept: every text file of the sample papers, the
    convention projects and the test assets scans clean."""
    root = Path(__file__).resolve().parents[2]
    scanner = SecretScanner(environ={})
    files = [
        p
        for folder in ("sample_papers", "tests/projects", "tests/assets")
        for p in (root / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(files) > 100
    assert [h for p in files for h in scanner.scan_file(p, str(p.relative_to(root)))] == []


def test_values_of_every_common_secret_variable_are_found_even_short_ones() -> None:
    environ = {
        "PGPASSWORD": "pg-Secret-1",
        "MYSQL_PWD": "my5ql!",  # six characters: found as a whole word only
        "SMTP_PASS": "sm7p-pass",
        "DATABASE_URL": "postgres://u:Db-pw-42@db/x",  # the password inside a URL value
        "SIGNING_KEY": "k3y-material",
        "PWD": "/home/user",  # the working directory, never a secret
        "OLDPWD": "/tmp",
        "SSL_KEY": "/etc/ssl/private/x.pem",  # a path: a reference, not the secret
        "PASSWORD": "true",  # a plain word: indistinguishable from text, not searched
    }
    scanner = SecretScanner(environ=environ)
    found = "pg-Secret-1 and my5ql! then sm7p-pass, Db-pw-42 k3y-material"
    hits = scanner.scan_bytes(found.encode(), "log")
    assert len(hits) == 5 and all(h.kind == "value of a secret environment variable" for h in hits)
    clean = b"cwd /home/user /tmp /etc/ssl/private/x.pem true, inside a word: amy5ql!b"
    assert scanner.scan_bytes(clean, "log") == []
    assert secrets.is_secret_variable("PGPASSWORD") and secrets.is_secret_variable("MYSQL_PWD")
    assert secrets.is_secret_variable("DB_PASS") and secrets.is_secret_variable("GPG_KEY")
    assert not secrets.is_secret_variable("PWD") and not secrets.is_secret_variable("SSH_ASKPASS")
    assert not secrets.is_secret_variable("KEYBOARD") and not secrets.is_secret_variable("PATH")


def test_the_rules_digest_changes_with_the_rules_and_the_values() -> None:
    a = SecretScanner(environ={}).rules_digest
    assert a != SecretScanner(environ={"PGPASSWORD": "hunter22"}).rules_digest
    assert a == SecretScanner(environ={"HOME": "/x"}).rules_digest
