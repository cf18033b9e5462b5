"""Environment loading for devhost (mirrors ``func start`` handling of local.settings.json)."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from .services import AzuritePorts

logger = logging.getLogger("devhost.settings")

DEV_STORAGE_SHORTCUT = "usedevelopmentstorage=true"
DEV_STORAGE_CONNECTION_STRING = AzuritePorts(10000, 10001, 10002).connection_string
STORAGE_SETTING = "AzureWebJobsStorage"
LOCAL_SETTINGS_FILE = "local.settings.json"

_SETTING_EXPR = re.compile(r"%([^%]+)%")


class ConfigurationError(Exception):
    """Raised when the app or its settings cannot be used to start the host."""


def expand_dev_storage(value: str) -> str:
    """Expand the ``UseDevelopmentStorage=true`` shortcut to the explicit Azurite connection string."""
    if value.strip().rstrip(";").lower() == DEV_STORAGE_SHORTCUT:
        return DEV_STORAGE_CONNECTION_STRING
    return value


def read_local_settings(app_dir: Path) -> dict[str, str]:
    """Return the ``Values`` of ``local.settings.json`` (empty if the file is absent)."""
    path = app_dir / LOCAL_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: top level must be a JSON object")
    values: Any = data.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigurationError(f"{path}: 'Values' must be a JSON object")
    result: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            result[str(key)] = "true" if value else "false"
        else:
            result[str(key)] = str(value)
    return result


def apply_local_settings(app_dir: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy local settings into the environment (existing variables win).

    Returns the names of the settings that were applied. Also expands the
    ``UseDevelopmentStorage=true`` shortcut of ``AzureWebJobsStorage``.
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    applied: list[str] = []
    for key, value in read_local_settings(app_dir).items():
        if key in env:
            logger.debug("setting %s already in the environment; local.settings.json value ignored", key)
            continue
        env[key] = value
        applied.append(key)
    storage = env.get(STORAGE_SETTING)
    if storage is not None:
        env[STORAGE_SETTING] = expand_dev_storage(storage)
    return applied


def get_setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Look up an app setting; exact name first, then case-insensitively (``:`` and ``__`` equivalent)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if name in env:
        return env[name]
    wanted = name.replace(":", "__").lower()
    for key, value in env.items():
        if key.replace(":", "__").lower() == wanted:
            return value
    return None


def resolve_setting_expression(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``%Name%`` in ``value`` with the app setting ``Name``.

    Raises ConfigurationError when a referenced setting is not defined.
    """

    def _sub(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = get_setting(name, environ)
        if resolved is None:
            raise ConfigurationError(f"app setting '{name}' referenced as '%{name}%' is not set")
        return resolved

    return _SETTING_EXPR.sub(_sub, value)
