"""A machine reached over SSH through the system `ssh` client: run a shell command there,
stream bytes to it, read a stream back. BatchMode (never a password prompt), a connect
timeout, one shared connection (ControlMaster) per host and process, host keys checked as
ssh checks them (an unknown or changed key is refused, never accepted silently)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from repro.errors import ReproError, ServiceUnavailableError

SSH_HINT = "check that `ssh HOST true` works from this shell without a prompt"


class HostUnreachableError(ServiceUnavailableError):
    default_hint = "check the host name, the network (VPN) and the port; then: ssh HOST true"


class HostAuthError(ReproError):
    default_hint = (
        "repro never prompts for a password: load your key (ssh-add) or set identity_file "
        "for the cluster in ~/.config/repro/config.toml"
    )


class HostKeyError(ReproError):
    default_hint = "connect once with `ssh HOST` to check and accept the host's key"


class RemoteCommandError(ReproError):
    default_hint = "run the command there by hand (ssh HOST) to see why"


class RemoteDiskFullError(ReproError):
    default_hint = "free space there, or set another workdir for the cluster in config.toml"


DISK_FULL = "No space left on device"


@dataclass(frozen=True)
class HostSpec:
    """Where and how to connect (an `--host` value, or a cluster of the user config)."""

    destination: str
    """user@host, or a Host alias of ~/.ssh/config."""
    port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    ssh_config: Path | None = None
    """A client config passed with -F (instead of ~/.ssh/config)."""
    workdir: str | None = None
    """Where replays run there (must be on a filesystem the nodes share)."""
    python: str = "python3"
    """The Python there that repro's own environment is made with."""
    name: str | None = None
    """The cluster's name in the user config, when it came from there."""
    partition: str | None = None
    account: str | None = None
    connect_timeout: int = 15
    options: tuple[str, ...] = field(default=())
    """More `-o KEY=VALUE` options for ssh."""

    @property
    def label(self) -> str:
        return self.name or self.destination


@dataclass(frozen=True)
class Answer:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def error_text(self) -> str:
        return " ".join(self.stderr.decode("utf-8", "replace").split())[-300:]


def _control_dir() -> Path:
    """Sockets of shared connections: short (a socket path has ~100 bytes), private."""
    path = Path(tempfile.gettempdir()) / f"repro-ssh-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def ssh_failure(spec: HostSpec, stderr: str) -> ReproError:
    """What an ssh exit 255 (ssh's own failure, not the command's) means, in one line."""
    where = spec.label
    text = stderr.strip()
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return HostKeyError(f"the host key of {where} is not known here or has changed")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return HostAuthError(f"{where} refused the login: {text[-160:]}")
    if re.search(
        r"Could not resolve|Connection refused|timed out|No route to host|Network is "
        r"unreachable|Connection closed|Connection reset",
        text,
    ):
        return HostUnreachableError(f"cannot reach {where}: {text[-160:]}")
    return HostUnreachableError(f"ssh to {where} failed: {text[-200:] or 'exit code 255'}")


class RemoteHost:
    """The real implementation: the system ssh client, one subprocess per command, each in
    its own session (a Ctrl-C in the terminal reaches repro, which then cancels cleanly,
    not the ssh processes it still needs for that)."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self._home: str | None = None

    def ssh_argv(self) -> list[str]:
        s = self.spec
        argv = ["ssh"]
        if s.ssh_config is not None:
            argv += ["-F", str(s.ssh_config)]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={s.connect_timeout}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={_control_dir()}/{self._credentials_tag()}-%C",
            "-o",
            "ControlPersist=60",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
        ]
        if s.port is not None:
            argv += ["-p", str(s.port)]
        if s.identity_file is not None:
            argv += ["-i", str(s.identity_file), "-o", "IdentitiesOnly=yes"]
        if s.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={s.known_hosts}"]
        for option in s.options:
            argv += ["-o", option]
        return argv

    def _credentials_tag(self) -> str:
        """Part of the shared connection's name: this process's own (another repro's `close`
        must not end the connection under this one's commands), and these credentials' (an
        ssh to the same user@host:port with another key, known_hosts or config must not ride
        on a connection made with these)."""
        s = self.spec
        what = repr((os.getpid(), s.ssh_config, s.identity_file, s.known_hosts, s.options))
        return hashlib.sha256(what.encode()).hexdigest()[:8]

    def _argv(self, command: str) -> list[str]:
        return [*self.ssh_argv(), "--", self.spec.destination, command]

    def run(
        self,
        command: str,
        *,
        timeout: float = 120,
        stdin: bytes | None = None,
        check: bool = True,
        what: str = "",
        on_stderr: Callable[[str], None] | None = None,
    ) -> Answer:
        """`command` run by the login shell there; ssh's own failures raise, and with
        `check` so does a non-zero exit of the command. `on_stderr` gets each line of its
        standard error as it comes (progress of a long command)."""
        try:
            if on_stderr is not None:
                done = self._streamed(command, timeout, on_stderr)
            else:
                done = subprocess.run(
                    self._argv(command),
                    input=stdin if stdin is not None else b"",
                    capture_output=True,
                    timeout=timeout,
                    start_new_session=True,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            raise HostUnreachableError(
                f"{self.spec.label} did not answer within {timeout:g} s"
                + (f" ({what})" if what else "")
            ) from None
        except FileNotFoundError:
            raise ServiceUnavailableError(
                "the ssh client is not installed here", hint="install OpenSSH's client (ssh)"
            ) from None
        answer = Answer(done.returncode, done.stdout, done.stderr)
        if answer.returncode == 255:
            raise ssh_failure(self.spec, answer.stderr.decode("utf-8", "replace"))
        if check and not answer.ok:
            raise self.command_failed(answer, what or command.split()[0])
        return answer

    def _streamed(
        self, command: str, timeout: float, on_line: Callable[[str], None]
    ) -> subprocess.CompletedProcess[bytes]:
        lines: list[bytes] = []
        with subprocess.Popen(
            self._argv(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as proc:
            if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE given
                raise RuntimeError("ssh started without pipes")
            stderr = proc.stderr

            def pump() -> None:
                try:
                    for raw in stderr:
                        lines.append(raw)
                        on_line(raw.decode("utf-8", "replace").rstrip())
                except (ValueError, OSError):  # closed under it: the command was stopped
                    return

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            try:
                out = proc.stdout.read()
                code = proc.wait(timeout=timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                reader.join(timeout=5)  # the pipe ends with ssh: let the reader finish
                raise
            reader.join(timeout=10)
        return subprocess.CompletedProcess(command, code, out, b"".join(lines))

    def command_failed(self, answer: Answer, what: str) -> ReproError:
        detail = answer.error_text or f"exit code {answer.returncode}"
        if DISK_FULL in detail:
            return RemoteDiskFullError(f"{self.spec.label} is out of disk space ({what})")
        return RemoteCommandError(f"{what} failed on {self.spec.label}: {detail}")

    def send(
        self,
        command: str,
        source: IO[bytes],
        *,
        progress: Callable[[int], None] | None = None,
        chunk: int = 1 << 20,
        what: str = "upload",
    ) -> int:
        """Stream `source` to the standard input of `command` there; the bytes sent."""
        sent = 0
        with subprocess.Popen(
            self._argv(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as proc:
            if proc.stdin is None or proc.stderr is None:  # pragma: no cover - PIPE given
                raise RuntimeError("ssh started without pipes")
            try:
                try:
                    while block := source.read(chunk):
                        proc.stdin.write(block)
                        sent += len(block)
                        if progress is not None:
                            progress(sent)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # the far side stopped reading: its exit status and stderr say why
                stderr = proc.stderr.read()
                code = proc.wait()
            except BaseException:
                proc.kill()
                raise
        answer = Answer(code, b"", stderr)
        if code == 255:
            raise ssh_failure(self.spec, stderr.decode("utf-8", "replace"))
        if code != 0:
            raise self.command_failed(answer, what)
        return sent

    @contextmanager
    def receive(self, command: str) -> Iterator[IO[bytes]]:
        """The standard output of `command` there, as a stream; its failure raises on exit."""
        with subprocess.Popen(
            self._argv(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as proc:
            if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE given
                raise RuntimeError("ssh started without pipes")
            try:
                yield proc.stdout
                proc.stdout.read()
                stderr = proc.stderr.read()
                code = proc.wait()
            except BaseException:
                proc.kill()
                raise
        if code == 255:
            raise ssh_failure(self.spec, stderr.decode("utf-8", "replace"))
        if code != 0:
            raise self.command_failed(Answer(code, b"", stderr), command.split()[0])

    def home(self) -> str:
        """The login user's home there (absolute)."""
        if self._home is None:
            answer = self.run('printf %s "$HOME"', what="reading $HOME", timeout=60)
            home = answer.text.strip()
            if not home.startswith("/"):
                raise RemoteCommandError(f"{self.spec.label} has no usable $HOME ({home!r})")
            self._home = home
        return self._home

    def has(self, program: str) -> bool:
        answer = self.run(f"command -v {shlex.quote(program)}", check=False, timeout=60)
        return answer.ok and bool(answer.text.strip())

    def close(self) -> None:
        """Stop the shared connection (it would otherwise linger for ControlPersist)."""
        subprocess.run(
            [*self.ssh_argv(), "-O", "exit", "--", self.spec.destination],
            capture_output=True,
            timeout=15,
            start_new_session=True,
            check=False,
        )


def quote(word: str) -> str:
    return shlex.quote(word)
