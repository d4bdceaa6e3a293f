"""Clusters named in the user config (`~/.config/repro/config.toml`, `[clusters.NAME]`), and
the HostSpec an `--host` value means: a cluster's name, or `[user@]host[:port]`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import Field, ValidationError

from repro.errors import ConfigError, UsageError
from repro.model_base import Model
from repro.paths import config_dir
from repro.remote.host import HostSpec

CONFIG_NAME = "config.toml"


class ClusterConfig(Model):
    """One `[clusters.NAME]` table."""

    host: str = Field(min_length=1)
    """user@login.example.org, or a Host alias of ~/.ssh/config."""
    port: int | None = Field(default=None, ge=1, le=65535)
    identity_file: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    workdir: str | None = None
    """Where replays run on the cluster: a filesystem its nodes share (default
    ~/repro-replays there)."""
    python: str = "python3"
    """The Python (>= 3.11) there that repro's own environment is made with."""
    partition: str | None = None
    account: str | None = None
    ssh_options: list[str] = Field(default_factory=list)
    """More `-o KEY=VALUE` options for ssh."""


class UserConfig(Model):
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)


def config_path() -> Path:
    return config_dir() / CONFIG_NAME


def load_user_config(path: Path | None = None) -> UserConfig:
    path = path or config_path()
    if not path.is_file():
        return UserConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return UserConfig.model_validate(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint=f"fix {path}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}", hint=f"fix {path}") from None


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def resolve_host(value: str, config: UserConfig | None = None) -> HostSpec:
    """A cluster of the user config by name, else `[user@]host[:port]` as ssh reads it."""
    config = config if config is not None else load_user_config()
    cluster = config.clusters.get(value)
    if cluster is not None:
        return HostSpec(
            destination=cluster.host,
            port=cluster.port,
            identity_file=_path(cluster.identity_file),
            known_hosts=_path(cluster.known_hosts),
            ssh_config=_path(cluster.ssh_config),
            workdir=cluster.workdir,
            python=cluster.python,
            name=value,
            partition=cluster.partition,
            account=cluster.account,
            options=tuple(cluster.ssh_options),
        )
    match = re.fullmatch(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+(?::(\d{1,5}))?", value)
    if match is None or value.startswith("-"):
        known = ", ".join(sorted(config.clusters)) or "none"
        raise UsageError(
            f"--host {value!r} is neither user@host[:port] nor a cluster of {config_path()}",
            hint=f"clusters there: {known}",
        )
    port = match.group(1)
    destination = value.rsplit(":", 1)[0] if port else value
    return HostSpec(destination=destination, port=int(port) if port else None)
