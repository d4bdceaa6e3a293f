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
    found = _find(project)
    return None if found is None else (found[0], found[1])


def _find(project: Path) -> tuple[dict[str, Any], str, str, tuple[str, ...]] | None:
    """The raw table, its name, the file's text and where the table is in the file."""
    toml_path = project / CONFIG_NAME
    if toml_path.is_file():
        raw, text = _load_toml(toml_path)
        return raw, CONFIG_NAME, text, ()
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        raw, text = _load_toml(pyproject)
        table = raw.get("tool", {}).get("repro")
        if isinstance(table, dict):
            return table, "pyproject.toml [tool.repro]", text, ("tool", "repro")
    return None


def load_config(project: Path) -> tuple[ProjectConfig, str | None]:
    """The project's config (defaults when it has none) and where it came from."""
    found = _find(project)
    if found is None:
        return ProjectConfig(), None
    raw, source, text, prefix = found
    return parse_config(raw, source, text, prefix), source


def parse_config(
    raw: dict[str, Any], source: str, text: str | None = None, prefix: tuple[str, ...] = ()
) -> ProjectConfig:
    """The config table as models; ConfigError naming every problem (with its line and
    column when the file's `text` is given) when it does not validate."""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        from repro.config.errors import config_error

        raise config_error(exc, raw, ProjectConfig, source, text, prefix) from None


def _load_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        with path.open("rb") as fh:
            data = fh.read()
        text = data.decode("utf-8")
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
