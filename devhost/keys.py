"""Function keys and HTTP ``authLevel``, decided the way the Azure Functions host decides them.

Off unless the setting ``DEVHOST_KEYS_FILE`` (or ``python -m devhost --keys-file``) names a keys file, as
``func start`` does not check keys ("When running functions locally, authorization is disabled regardless of
the specified authorization level setting", azure-docs ``functions-bindings-http-webhook-trigger.md``).

Modelled on Azure/azure-functions-host (src/WebJobs.Script.WebHost/, commit 89dc438d):

- ``Security/Authentication/Keys/AuthenticationLevelHandler.cs`` L23-24, L87-108: the key is read from the
  ``x-functions-key`` header, else from the ``code`` query parameter (the header takes precedence: when the
  header is present the query is not looked at); the first value counts; an empty key grants nothing.
- ``Security/KeyManagement/SecretManager.cs`` L544-576 ``GetAuthorizationLevelAsync``: the master key gives
  Admin; a system key gives System; a host key (``functionKeys`` of host secrets) gives Function; a key of
  the function being called gives Function; anything else gives Anonymous (nothing). L172: function
  names are matched case-insensitively.
- ``Security/KeyManagement/Key.cs`` L59-78 ``SecretValueEquals``: ordinal comparison in constant time.
- ``Security/Authorization/AuthUtility.cs`` L30-60 ``PrincipalHasAuthLevelClaim``: an anonymous function
  is always allowed; an Admin grant satisfies every level; otherwise the grant must equal the required
  level (so a system key does not open a ``function`` route, and only the master key opens ``admin``).
- ``Middleware/FunctionInvocationMiddleware.cs`` L117-121: a failed check answers ``UnauthorizedResult``,
  i.e. ``401`` with no body and no ``WWW-Authenticate``.

The keys file has the shape of the host's own secrets files (``Security/KeyManagement/HostSecrets.cs``:
``masterKey``, ``functionKeys``, ``systemKeys``; ``FunctionSecrets.cs``: ``keys``; ``Key.cs``: ``name``,
``value``, ``encrypted``), the per-function files gathered under ``functions``::

    {
      "masterKey": {"name": "master", "value": "<master key>"},
      "functionKeys": [{"name": "default", "value": "<host key>"}],
      "systemKeys": [],
      "functions": {"get_operation": {"keys": [{"name": "default", "value": "<function key>"}]}}
    }
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from devhost.settings import ConfigurationError, get_setting

KEYS_FILE_SETTING = "DEVHOST_KEYS_FILE"
KEY_HEADER = "x-functions-key"  # AuthenticationLevelHandler.FunctionsKeyHeaderName
KEY_QUERY = "code"  # AuthenticationLevelHandler.FunctionsKeyQueryParamName
MASTER_KEY_NAME = "master"  # ScriptConstants.DefaultMasterKeyName
REDACTED = "REDACTED"


class AuthLevel(IntEnum):
    """Microsoft.Azure.WebJobs.Extensions.Http ``AuthorizationLevel``."""

    ANONYMOUS = 0
    USER = 1
    FUNCTION = 2
    SYSTEM = 3
    ADMIN = 4


def parse_auth_level(text: str) -> AuthLevel:
    """A binding's ``authLevel`` (any case, as the host's enum parse); ValueError if unknown."""
    try:
        return AuthLevel[text.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown authLevel {text!r} (expected anonymous, function or admin)") from None


@dataclass(frozen=True)
class Secrets:
    """The keys the host knows: name -> value per scope; function names lower-cased."""

    master: str
    host_keys: Mapping[str, str] = field(default_factory=dict)
    system_keys: Mapping[str, str] = field(default_factory=dict)
    function_keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def values(self) -> list[str]:
        found = [self.master, *self.host_keys.values(), *self.system_keys.values()]
        for keys in self.function_keys.values():
            found.extend(keys.values())
        return found


@dataclass(frozen=True)
class Grant:
    """What a presented key grants (SecretManager's ``(KeyName, Level)``)."""

    level: AuthLevel
    key_name: str | None = None


NO_GRANT = Grant(AuthLevel.ANONYMOUS)


def secret_equals(a: str, b: str) -> bool:
    """Key.SecretValueEquals: equal values, compared in constant time."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _match(keys: Mapping[str, str], presented: str) -> str | None:
    # SecretManager.HasMatchingKey: the first key whose value equals; compare against all to keep the time flat
    found: str | None = None
    for name, value in keys.items():
        if secret_equals(value, presented) and found is None:
            found = name
    return found


def key_grant(secrets: Secrets, presented: str | None, function_name: str | None) -> Grant:
    """SecretManager.GetAuthorizationLevelAsync (L544-576), in its order: master, system, host, function."""
    if not presented:
        return NO_GRANT
    if secrets.master and secret_equals(presented, secrets.master):
        return Grant(AuthLevel.ADMIN, MASTER_KEY_NAME)
    name = _match(secrets.system_keys, presented)
    if name is not None:
        return Grant(AuthLevel.SYSTEM, name)
    name = _match(secrets.host_keys, presented)
    if name is not None:
        return Grant(AuthLevel.FUNCTION, name)
    if function_name is not None:
        name = _match(secrets.function_keys.get(function_name.lower(), {}), presented)
        if name is not None:
            return Grant(AuthLevel.FUNCTION, name)
    return NO_GRANT


def satisfies(required: AuthLevel, granted: AuthLevel) -> bool:
    """AuthUtility.PrincipalHasAuthLevelClaim (L30-60)."""
    if required is AuthLevel.ANONYMOUS:
        return True
    if granted is AuthLevel.ADMIN:
        return True
    return granted is not AuthLevel.ANONYMOUS and granted == required


def presented_key(headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]]) -> str | None:
    """AuthenticationLevelHandler L89-98: the header's first value if the header is present, else ``code``'s.

    Header and query names are case-insensitive in ASP.NET Core; query names and values arrive decoded.
    """
    for name, value in headers:
        if name.lower() == KEY_HEADER:
            return value
    for name, value in query:
        if name.lower() == KEY_QUERY:
            return value
    return None


def authorize(
    secrets: Secrets,
    required: AuthLevel,
    function_name: str,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
) -> bool:
    """May this request call this function? (authenticate the key, then authorize the level)."""
    if required is AuthLevel.ANONYMOUS:
        return True
    grant = key_grant(secrets, presented_key(headers, query), function_name)
    return satisfies(required, grant.level)


# ---------------------------------------------------------------- the keys file


def _keys(raw: Any, where: str, source: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ConfigurationError(f'{source}: {where} must be a list of {{"name", "value"}} objects')
    keys: dict[str, str] = {}
    for index, item in enumerate(raw):
        name, value = _key(item, f"{where}[{index}]", source)
        if name.lower() in (k.lower() for k in keys):
            raise ConfigurationError(f"{source}: {where} has two keys named {name!r}")
        keys[name] = value
    return keys


def _key(item: Any, where: str, source: str) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise ConfigurationError(f'{source}: {where} must be an object with "name" and "value"')
    name, value = item.get("name"), item.get("value")
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{source}: {where}.name must be a non-empty string")
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{source}: {where}.value must be a non-empty string")
    if item.get("encrypted", False) is not False:
        raise ConfigurationError(f'{source}: {where} is encrypted; devhost needs plain values ("encrypted": false)')
    return name, value


def parse_secrets(data: Any, source: str = "keys file") -> Secrets:
    """Validate a keys file's JSON; ConfigurationError names the field at fault (never a value)."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: top level must be a JSON object")
    known = {
        "masterKey",
        "functionKeys",
        "systemKeys",
        "functions",
        "hostName",
        "instanceId",
        "source",
        "decryptionKeyId",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"{source}: unknown field(s) {', '.join(unknown)}")
    if "masterKey" not in data:
        raise ConfigurationError(f"{source}: masterKey is required (the host always has a master key)")
    _, master = _key(data["masterKey"], "masterKey", source)
    functions_raw: Any = data.get("functions") or {}
    if not isinstance(functions_raw, dict):
        raise ConfigurationError(f'{source}: functions must be an object of function name -> {{"keys": [...]}}')
    function_keys: dict[str, dict[str, str]] = {}
    for fn_name, section in functions_raw.items():
        where = f"functions.{fn_name}"
        if not isinstance(section, dict) or set(section) - {
            "keys",
            "hostName",
            "instanceId",
            "source",
            "decryptionKeyId",
        }:
            raise ConfigurationError(f'{source}: {where} must be an object {{"keys": [...]}}')
        if fn_name.lower() in function_keys:
            raise ConfigurationError(f"{source}: function {fn_name!r} is listed twice (names ignore case)")
        function_keys[fn_name.lower()] = _keys(section.get("keys"), f"{where}.keys", source)
    return Secrets(
        master=master,
        host_keys=_keys(data.get("functionKeys"), "functionKeys", source),
        system_keys=_keys(data.get("systemKeys"), "systemKeys", source),
        function_keys=function_keys,
    )


def load_keys_file(path: Path) -> Secrets:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigurationError(f"{KEYS_FILE_SETTING}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{KEYS_FILE_SETTING}: {path} is not valid JSON ({exc})") from None
    return parse_secrets(data, f"{KEYS_FILE_SETTING} {path}")


def keys_file_path(app_dir: Path, environ: Mapping[str, str], override: Path | None = None) -> Path | None:
    """The keys file to use: ``override`` (the CLI flag), else the setting, relative to the app directory."""
    if override is not None:
        return override
    value = (get_setting(KEYS_FILE_SETTING, environ) or "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else app_dir / path


def write_keys_file(
    path: Path,
    *,
    master: str,
    host_keys: Mapping[str, str] | None = None,
    function_keys: Mapping[str, Mapping[str, str]] | None = None,
    system_keys: Mapping[str, str] | None = None,
) -> Path:
    """Write a keys file (for tests and `make run`); keys are given as name -> value."""

    def as_list(keys: Mapping[str, str] | None) -> list[dict[str, Any]]:
        return [{"name": n, "value": v, "encrypted": False} for n, v in (keys or {}).items()]

    data = {
        "masterKey": {"name": MASTER_KEY_NAME, "value": master, "encrypted": False},
        "functionKeys": as_list(host_keys),
        "systemKeys": as_list(system_keys),
        "functions": {fn: {"keys": as_list(keys)} for fn, keys in (function_keys or {}).items()},
    }
    parse_secrets(data, str(path))  # refuse to write what devhost would refuse to read
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


# ---------------------------------------------------------------- keeping keys out of logs

# `code` in a query string, also percent-encoded (ASP.NET decodes names, so `c%6Fde=` is a key too)
_CODE_PARAM = re.compile(r"([?&](?:c|%63)(?:o|%6f)(?:d|%64)(?:e|%65)=)[^&#\s\"']*", re.IGNORECASE)
_KEY_HEADER_TEXT = re.compile(r"(x-functions-key[\"']?\s*[:=,]\s*[\"']?)[^\"'\s,;}\)]+", re.IGNORECASE)


def redact_query(path_qs: str) -> str:
    """``/api/x?code=abc&a=1`` -> ``/api/x?code=REDACTED&a=1`` (every ``code`` parameter, any case/encoding)."""
    if "?" not in path_qs:
        return path_qs
    path, query = path_qs.split("?", 1)
    parts = []
    for part in query.split("&"):
        name = part.split("=", 1)[0]
        if unquote_plus(name).lower() == KEY_QUERY:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class Redactor:
    """Removes keys from log text: ``code=`` values, ``x-functions-key`` values and every known key value."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self._values.update(v for v in values if v)

    def redact(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        text = _CODE_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
        return _KEY_HEADER_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


REDACTOR = Redactor()
