"""The function-key decision devhost makes, as the Azure Functions host makes it (pure; no server).

Each rule cites the azure-functions-host source it models (src/WebJobs.Script.WebHost/, commit 89dc438d).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devhost.keys import (
    REDACTED,
    AuthLevel,
    Redactor,
    Secrets,
    authorize,
    key_grant,
    keys_file_path,
    load_keys_file,
    parse_auth_level,
    parse_secrets,
    presented_key,
    redact_query,
    satisfies,
    secret_equals,
    write_keys_file,
)
from devhost.settings import ConfigurationError

MASTER = "master-key-value-0001"
HOST = "host-key-value-0002"
SYSTEM = "system-key-value-0003"
GET_KEY = "get-item-key-0004"
OTHER_KEY = "other-fn-key-0005"

SECRETS = Secrets(
    master=MASTER,
    host_keys={"default": HOST},
    system_keys={"durabletask_extension": SYSTEM},
    function_keys={"get_item": {"default": GET_KEY}, "other": {"default": OTHER_KEY}},
)


def allowed(level: AuthLevel, fn: str = "get_item", *, header: str | None = None, code: str | None = None) -> bool:
    headers = [("Accept", "*/*")] + ([("x-functions-key", header)] if header is not None else [])
    query = [("a", "1")] + ([("code", code)] if code is not None else [])
    return authorize(SECRETS, level, fn, headers, query)


# SecretManager.cs L544-576 GetAuthorizationLevelAsync; AuthUtility.cs L30-60 PrincipalHasAuthLevelClaim
@pytest.mark.parametrize(
    ("level", "key", "expected"),
    [
        (AuthLevel.ANONYMOUS, None, True),
        (AuthLevel.ANONYMOUS, "wrong", True),  # FunctionInvocationMiddleware.RequiresAuthz runs, anonymous passes
        (AuthLevel.FUNCTION, None, False),
        (AuthLevel.FUNCTION, "", False),  # AuthenticationLevelHandler L100: empty key grants nothing
        (AuthLevel.FUNCTION, "wrong", False),
        (AuthLevel.FUNCTION, GET_KEY, True),  # the function's own key
        (AuthLevel.FUNCTION, HOST, True),  # any host key
        (AuthLevel.FUNCTION, MASTER, True),  # Admin satisfies every level
        (AuthLevel.FUNCTION, OTHER_KEY, False),  # another function's key
        (AuthLevel.FUNCTION, SYSTEM, False),  # System grant != Function requirement
        (AuthLevel.FUNCTION, GET_KEY.upper(), False),  # values compare ordinally
        (AuthLevel.FUNCTION, GET_KEY[:-1], False),
        (AuthLevel.ADMIN, MASTER, True),
        (AuthLevel.ADMIN, HOST, False),
        (AuthLevel.ADMIN, GET_KEY, False),
        (AuthLevel.ADMIN, SYSTEM, False),
        (AuthLevel.ADMIN, None, False),
        (AuthLevel.SYSTEM, SYSTEM, True),
        (AuthLevel.SYSTEM, HOST, False),
        (AuthLevel.USER, HOST, False),  # no key grants User; only the master key
        (AuthLevel.USER, MASTER, True),
    ],
)
def test_auth_levels_and_keys(level: AuthLevel, key: str | None, expected: bool) -> None:
    assert allowed(level, code=key) is expected
    assert allowed(level, header=key) is expected


def test_grants_name_the_key_and_level() -> None:
    assert key_grant(SECRETS, MASTER, "get_item").level is AuthLevel.ADMIN
    assert key_grant(SECRETS, MASTER, None).key_name == "master"  # ScriptConstants.DefaultMasterKeyName
    assert key_grant(SECRETS, HOST, "x").key_name == "default"
    assert key_grant(SECRETS, GET_KEY, None).level is AuthLevel.ANONYMOUS  # function keys need the function
    assert key_grant(SECRETS, GET_KEY, "GET_ITEM").level is AuthLevel.FUNCTION  # SecretManager L172: lower-cased


def test_the_header_takes_precedence_over_code() -> None:
    # AuthenticationLevelHandler.cs L89-98: header if present (even wrong or empty), else `code`
    assert allowed(AuthLevel.FUNCTION, header="wrong", code=GET_KEY) is False
    assert allowed(AuthLevel.FUNCTION, header="", code=GET_KEY) is False
    assert allowed(AuthLevel.FUNCTION, header=GET_KEY, code="wrong") is True


def test_names_are_case_insensitive_and_the_first_value_counts() -> None:
    assert presented_key([("X-Functions-Key", "h1"), ("x-functions-key", "h2")], []) == "h1"
    assert presented_key([], [("CODE", "q1"), ("code", "q2")]) == "q1"
    assert presented_key([("Accept", "x")], [("codes", "no")]) is None


def test_satisfies_matches_principal_has_auth_level_claim() -> None:
    assert all(satisfies(AuthLevel.ANONYMOUS, granted) for granted in AuthLevel)
    assert all(satisfies(required, AuthLevel.ADMIN) for required in AuthLevel)
    assert not satisfies(AuthLevel.FUNCTION, AuthLevel.ANONYMOUS)
    assert not satisfies(AuthLevel.ADMIN, AuthLevel.FUNCTION)


def test_secret_equals() -> None:
    assert secret_equals("abc", "abc") and not secret_equals("abc", "abd") and not secret_equals("abc", "abcd")
    assert secret_equals("clé", "clé") and not secret_equals("", "a")


def test_auth_level_parsing() -> None:
    assert parse_auth_level("FUNCTION") is AuthLevel.FUNCTION and parse_auth_level("anonymous") is AuthLevel.ANONYMOUS
    assert parse_auth_level("Admin") is AuthLevel.ADMIN
    with pytest.raises(ValueError, match="unknown authLevel"):
        parse_auth_level("superuser")


# ---------------------------------------------------------------- the keys file


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    path = write_keys_file(
        tmp_path / "keys.json",
        master=MASTER,
        host_keys={"default": HOST, "ci": "ci-key"},
        function_keys={"Get_Item": {"default": GET_KEY}},
        system_keys={"s": SYSTEM},
    )
    data = json.loads(path.read_text())
    # HostSecrets.cs / Key.cs property names
    assert data["masterKey"] == {"name": "master", "value": MASTER, "encrypted": False}
    assert data["functionKeys"][1] == {"name": "ci", "value": "ci-key", "encrypted": False}
    secrets = load_keys_file(path)
    assert secrets.master == MASTER and secrets.host_keys == {"default": HOST, "ci": "ci-key"}
    assert secrets.function_keys == {"get_item": {"default": GET_KEY}} and secrets.system_keys == {"s": SYSTEM}


def test_a_minimal_file_is_just_the_master_key() -> None:
    secrets = parse_secrets({"masterKey": {"name": "master", "value": MASTER}})
    assert secrets.host_keys == {} and secrets.function_keys == {}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "top level"),
        ({}, "masterKey is required"),
        ({"masterKey": MASTER}, "masterKey must be an object"),
        ({"masterKey": {"name": "master", "value": ""}}, "masterKey.value"),
        ({"masterKey": {"name": "master", "value": MASTER, "encrypted": True}}, "masterKey is encrypted"),
        ({"masterKey": {"name": "master", "value": MASTER}, "functionKeys": {"default": HOST}}, "functionKeys must"),
        (
            {"masterKey": {"name": "master", "value": MASTER}, "functionKeys": [{"value": HOST}]},
            r"functionKeys\[0\].name",
        ),
        (
            {
                "masterKey": {"name": "master", "value": MASTER},
                "functionKeys": [{"name": "a", "value": HOST}, {"name": "A", "value": "x"}],
            },
            "two keys named",
        ),
        (
            {"masterKey": {"name": "master", "value": MASTER}, "functions": {"f": [{"name": "a", "value": HOST}]}},
            "functions.f must be",
        ),
        (
            {
                "masterKey": {"name": "master", "value": MASTER},
                "functions": {"f": {"keys": [{"name": "a", "value": 5}]}},
            },
            r"functions.f.keys\[0\].value",
        ),
        ({"masterKey": {"name": "master", "value": MASTER}, "hostKeys": []}, "unknown field"),
    ],
)
def test_malformed_files_name_the_field_and_never_the_value(data: Any, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field) as caught:
        parse_secrets(data, "keys.json")
    assert MASTER not in str(caught.value) and HOST not in str(caught.value)


def test_unreadable_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DEVHOST_KEYS_FILE: cannot read"):
        load_keys_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_keys_file(tmp_path / "bad.json")


def test_the_keys_file_setting_is_resolved_against_the_app_directory(tmp_path: Path) -> None:
    assert keys_file_path(tmp_path, {}) is None
    assert keys_file_path(tmp_path, {"DEVHOST_KEYS_FILE": "  "}) is None
    assert keys_file_path(tmp_path, {"DEVHOST_KEYS_FILE": "keys/dev.json"}) == tmp_path / "keys" / "dev.json"
    assert keys_file_path(tmp_path, {"devhost_keys_file": "/abs/k.json"}) == Path("/abs/k.json")
    assert keys_file_path(tmp_path, {"DEVHOST_KEYS_FILE": "a.json"}, override=Path("/cli.json")) == Path("/cli.json")


# ---------------------------------------------------------------- keys never logged


def test_redact_query() -> None:
    assert redact_query("/api/items/1") == "/api/items/1"
    assert redact_query(f"/api/x?a=1&code={HOST}&b=2") == f"/api/x?a=1&code={REDACTED}&b=2"
    assert redact_query(f"/api/x?CODE={HOST}&c%6Fde={HOST}&codes=kept") == (
        f"/api/x?CODE={REDACTED}&c%6Fde={REDACTED}&codes=kept"
    )


def test_redactor_removes_known_values_and_key_shapes() -> None:
    redactor = Redactor()
    redactor.add([HOST, ""])
    text = (
        f"GET http://h/api/x?code=abc&z=1 'x-functions-key': 'hdr-value' X-Functions-Key: other "
        f"and {HOST} in a traceback"
    )
    out = redactor.redact(text)
    for secret in ("abc", "hdr-value", "other", HOST):
        assert secret not in out
    assert f"?code={REDACTED}&z=1" in out and "status code 500" == redactor.redact("status code 500")
