"""Settings of delegated mode and ownership."""

from __future__ import annotations

import base64

import pytest

from shared.runtime.settings import SettingsError, load_settings

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
KEY = "k:" + base64.b64encode(b"s" * 32).decode()


def test_app_mode_is_the_default() -> None:
    settings = load_settings(BASE)
    assert settings.delegated is None
    assert settings.default_owner == "default" and not settings.auth_enabled


def test_delegated_mode_needs_its_registration_and_sealing_keys() -> None:
    with pytest.raises(SettingsError, match="TOKEN_SEALING_KEYS"):
        load_settings({**BASE, "GRAPH_AUTH": "delegated"})
    with pytest.raises(SettingsError, match="DELEGATED_TENANT_ID"):
        load_settings({**BASE, "GRAPH_AUTH": "delegated", "TOKEN_SEALING_KEYS": KEY})
    settings = load_settings(
        {
            **BASE,
            "GRAPH_AUTH": "Delegated",
            "TOKEN_SEALING_KEYS": KEY,
            "DELEGATED_TENANT_ID": "t",
            "DELEGATED_CLIENT_ID": "c",
            "AZURE_CLIENT_ID": "mi",
            "WEBSITE_AUTH_ENABLED": "True",
        }
    )
    assert settings.delegated is not None and settings.delegated.client_secret is None
    assert settings.delegated.managed_identity_client_id == "mi" and settings.auth_enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRAPH_AUTH": "user"}, "GRAPH_AUTH"),
        ({"TOKEN_SEALING_KEYS": "k:short"}, "TOKEN_SEALING_KEYS"),
        ({"DEFAULT_OWNER": "a/b"}, "DEFAULT_OWNER"),
        (
            {
                "GRAPH_AUTH": "delegated",
                "TOKEN_SEALING_KEYS": KEY,
                "DELEGATED_TENANT_ID": "t",
                "DELEGATED_CLIENT_ID": "c",
                "DELEGATED_CLIENT_CERTIFICATE": "not base64!",
            },
            "DELEGATED_CLIENT_CERTIFICATE",
        ),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({**BASE, **env})
