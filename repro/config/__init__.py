"""Read a project's configuration (repro.toml or [tool.repro] in pyproject.toml) into models.

The models themselves (what repro.toml may say) are in repro.config.models.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from repro.config.models import ProjectConfig
from repro.errors import ConfigError

CONFIG_NAME = "repro.toml"


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming the first bad field, as a user would write it in TOML."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: {loc or 'top level'}: {message}{more}"


def find_config(project: Path) -> tuple[dict[str, Any], str] | None:
    """The raw config table and a name for it, or None when the project has none."""
    toml_path = project / CONFIG_NAME
    if toml_path.is_file():
        return _load_toml(toml_path), CONFIG_NAME
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        table = _load_toml(pyproject).get("tool", {}).get("repro")
        if isinstance(table, dict):
            return table, "pyproject.toml [tool.repro]"
    return None


def load_config(project: Path) -> tuple[ProjectConfig, str | None]:
    """The project's config (defaults when it has none) and where it came from."""
    found = find_config(project)
    if found is None:
        return ProjectConfig(), None
    raw, source = found
    return parse_config(raw, source), source


def parse_config(raw: dict[str, Any], source: str) -> ProjectConfig:
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
