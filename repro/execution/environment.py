"""The environment a run gets, on every target, at capture and at replay: an allowlist.

A run sees the locale and time zone, a private HOME, a PATH of its environment and the
standard system folders, the capsule's declared variables (`[environment] variables`),
repro's own run variables (SOURCE_DATE_EPOCH, REPRO_POINT, REPRO_PARAM_*, ...) and the
variables the user names with `--pass-env` -- nothing else of the user's environment.
Tokens, keys, agent sockets and cloud credentials therefore never reach a capsule's code
unless the user passes them by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""System folders every run's PATH ends with."""
LOCALE = ("LANG", "LANGUAGE", "TZ")
"""Host variables a run gets as they are (with every LC_* variable): how text and time are
shown, which can change outputs and must stay the user's to choose."""
TRUST_ANCHORS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
)
"""Where this machine's CA certificates are (paths, never secrets): a run that declares the
network, or a postBuild installing packages, reaches HTTPS sites as the user's tools do
(behind a TLS-inspecting proxy too). Proxy variables are not passed: they can hold a
password (http://user:pass@proxy); --pass-env HTTPS_PROXY passes one."""


def standard_path(*first: str) -> str:
    """`first` (the environment's bin folder), then the standard system folders."""
    return os.pathsep.join(dict.fromkeys([*first, *STANDARD_PATH]))


def _locale(host: Mapping[str, str], anchors: bool) -> dict[str, str]:
    return {
        k: v
        for k, v in host.items()
        if k in LOCALE or k.startswith("LC_") or (anchors and k in TRUST_ANCHORS)
    }


@dataclass(frozen=True)
class Allowlist:
    """What of the outside a study's runs may see, beyond repro's own variables."""

    declared: Mapping[str, str] = field(default_factory=dict)
    """The capsule's `[environment] variables` and their values (at capture: read from this
    environment; at replay: as recorded)."""
    pass_env: tuple[str, ...] = ()
    """Names the user passes from this environment (--pass-env NAME)."""

    def missing(self, host: Mapping[str, str] | None = None) -> list[str]:
        """One warning per --pass-env name this environment does not set."""
        env = os.environ if host is None else host
        return [
            f"--pass-env {name}: {name} is not set here, the runs do not get it"
            for name in dict.fromkeys(self.pass_env)
            if name not in env
        ]


def run_environment(
    allowlist: Allowlist,
    *,
    home: str,
    path: str | None,
    variables: Mapping[str, str],
    host: Mapping[str, str] | None = None,
    host_paths: bool = True,
) -> dict[str, str]:
    """The complete environment of one run: the one function every target uses.

    `home`: a fresh private folder (never the user's); `path`: the run's PATH (None: the
    container image's own, which Docker keeps when none is given); `variables`: repro's own
    for this run (SOURCE_DATE_EPOCH, the sweep point, VIRTUAL_ENV, ...), which win over
    everything else; `host`: the environment to take the locale and --pass-env values from
    (default: this process's); `host_paths`: the run sees this machine's filesystem, so the
    CA certificate variables (TRUST_ANCHORS) mean something to it (not in a container).
    """
    source = os.environ if host is None else host
    env = _locale(source, host_paths)
    env.update(allowlist.declared)
    env.update({name: source[name] for name in allowlist.pass_env if name in source})
    env["HOME"] = home
    if path is not None:
        env["PATH"] = path
    env.update(variables)
    return env


def names_of(values: Iterable[str] | None) -> tuple[str, ...]:
    """--pass-env values as given (repeatable; order kept, duplicates dropped)."""
    return tuple(dict.fromkeys(values or ()))
