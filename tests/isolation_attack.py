"""A hostile study and the harness that replays it: the attack test and the isolation table
(tests/integration/test_isolation.py, benchmarks/bench_isolation.py) share it.

The study's one run, at replay, tries to (a) read secret variables planted in the replaying
user's environment, (b) read files planted in the user's HOME (an SSH key, repro's config)
and another capsule's cache folder, (c) write outside its work tree (the user's HOME, /tmp,
repro's cache) and (d) connect to a listener on 127.0.0.1 that the harness starts. It writes
what it managed into `attack.json` in its work tree and always exits 0.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SECRETS = {
    "ZENODO_API_TOKEN": "zenodo-token-4f2a9c",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-9b1e77",
    "REPRO_KEY_PASSPHRASE": "passphrase-1d3c5e",
    "GITHUB_TOKEN": "ghp_plantedtoken0000000000000000000000",
    "SSH_AUTH_SOCK": "/tmp/ssh-planted/agent.1",
}
ATTACKS = ("secret variables", "files in HOME", "write outside", "socket to 127.0.0.1")

RUN_SCRIPT = """\
import json, os, socket, sys
plan = json.load(open("plan.json"))
found = {"env": sorted(os.environ), "home": os.environ.get("HOME")}
found["secrets"] = sorted(n for n in plan["secrets"] if n in os.environ)
found["passed"] = sorted(n for n in plan["passed"] if n in os.environ)
read = []
for path in plan["read"]:
    try:
        with open(path) as fh:
            read.append([path, fh.read(64)])
    except OSError as exc:
        pass
found["read"] = read
written = []
for path in plan["write"]:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        written.append(path)
    except OSError:
        pass
found["written"] = written
try:
    with socket.create_connection(("127.0.0.1", plan["port"]), timeout=3) as s:
        s.sendall(b"hello from the capsule")
        found["socket"] = "connected"
except OSError as exc:
    found["socket"] = f"refused: {exc}"
with open("attack.json", "w") as fh:
    json.dump(found, fh, indent=1)
"""


@dataclass
class Listener:
    """A TCP listener on 127.0.0.1 that counts who connected."""

    sock: socket.socket = field(default_factory=socket.socket)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass(frozen=True)
class Plan:
    """Where the hostile run reads and writes, planted around the replaying user."""

    home: Path
    cache: Path
    read: list[Path]
    write: list[Path]

    @classmethod
    def around(cls, home: Path, cache: Path) -> Plan:
        tag = uuid.uuid4().hex[:8]
        return cls(
            home,
            cache,
            read=[
                home / ".ssh" / "id_rsa",
                home / ".config" / "repro" / "keys" / "default.key",
                cache / "venvs" / "victim-capsule" / "secret.txt",
            ],
            write=[
                home / f"pwned-{tag}",
                Path(f"/tmp/outside-marker-{tag}"),
                cache / "venvs" / f"pwned-{tag}",
            ],
        )

    def plant(self) -> None:
        for path in self.read:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"PLANTED SECRET {path.name}\n")
        (self.home / ".ssh").chmod(0o700)

    def written_outside(self) -> list[Path]:
        return [p for p in self.write if p.exists()]

    def clean(self) -> None:
        for path in self.write:
            path.unlink(missing_ok=True)


def hostile_project(dest: Path, plan: Plan, port: int, passed: list[str]) -> Path:
    """The study: one run, `attack.json` its output (compared; it differs, which is fine)."""
    dest.mkdir(parents=True)
    (dest / "attack.py").write_text(RUN_SCRIPT)
    (dest / "plan.json").write_text(
        json.dumps(
            {
                "secrets": sorted(SECRETS),
                "passed": passed,
                "read": [str(p) for p in plan.read],
                "write": [str(p) for p in plan.write],
                "port": port,
            }
        )
    )
    (dest / "repro.toml").write_text(
        '[[runs]]\nname = "attack"\ncommand = "python attack.py"\noutputs = ["attack.json"]\n'
        "timeout = 120\n"
    )
    return dest


@dataclass(frozen=True)
class Outcome:
    """What the hostile run managed on one target, attack by attack (True: refused)."""

    target: str
    isolation: str
    refused: dict[str, bool]
    details: dict[str, object]


def judge(
    target: str, isolation: str, found: dict[str, object], plan: Plan, connections: int
) -> Outcome:
    secrets = list(found.get("secrets") or [])  # type: ignore[call-overload]
    read = list(found.get("read") or [])  # type: ignore[call-overload]
    outside = plan.written_outside()
    socket_ok = found.get("socket") == "connected" or connections > 0
    refused = {
        "secret variables": not secrets,
        "files in HOME": not read,
        "write outside": not outside,
        "socket to 127.0.0.1": not socket_ok,
    }
    details: dict[str, object] = {
        "secrets": secrets,
        "read": [r[0] for r in read],
        "written": [str(p) for p in outside],
        "socket": found.get("socket"),
        "connections": connections,
    }
    return Outcome(target, isolation, refused, details)


def table(outcomes: list[Outcome]) -> str:
    """The isolation table: target x attack -> refused / ALLOWED."""
    head = ["target (isolation)", *ATTACKS]
    rows = [
        [
            f"{o.target} ({o.isolation})",
            *("refused" if o.refused[a] else "ALLOWED" for a in ATTACKS),
        ]
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])
