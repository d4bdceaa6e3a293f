"""Where repro keeps its caches and user state (platformdirs), overridable for tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """REPRO_CACHE_DIR, or the user cache directory."""
    override = os.environ.get("REPRO_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """REPRO_CONFIG_DIR, or the user config directory (keys, trust store)."""
    override = os.environ.get("REPRO_CONFIG_DIR")
    path = Path(override) if override else Path(platformdirs.user_config_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """REPRO_DATA_DIR, or the user data directory (the replay history)."""
    override = os.environ.get("REPRO_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("repro"))
    path.mkdir(parents=True, exist_ok=True)
    return path
