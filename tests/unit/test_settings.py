"""Settings from the environment: shared.runtime.settings."""

from __future__ import annotations

import base64

import pytest

from shared.runtime.settings import AZURITE_CONNECTION_STRING, SettingsError, load_settings
from shared.wire.origins import origin_of

CONN = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"


def env(**values: str) -> dict[str, str]:
    base = {"AzureWebJobsStorage": CONN}
    base.update(values)
    return {k: v for k, v in base.items() if v is not None}


def test_defaults():
    settings = load_settings(env())
    assert settings.storage.connection_string == CONN
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph_origin == "https://graph.microsoft.com"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.poll_initial_delay == 1.0
    assert settings.poll_max_delay == 240.0
    assert settings.operation_timeout == 3600.0
    assert settings.max_transient_failures == 8
    assert settings.poll_queue == "operation-polls"
    assert settings.webhook_queue == "webhook-deliveries"
    assert settings.operations_table == "operations"
    assert settings.webhook_secrets == ()
    assert settings.webhook_allow_private_networks is False
    assert settings.workbook_concurrency == 1 and settings.lane_lease_seconds == 600.0


@pytest.mark.parametrize(
    "raw", ["UseDevelopmentStorage=true", "UseDevelopmentStorage=True", " usedevelopmentstorage = true "]
)
def test_development_storage_is_expanded(raw):
    settings = load_settings({"AzureWebJobsStorage": raw})
    assert settings.storage.connection_string == AZURITE_CONNECTION_STRING
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in settings.storage.connection_string


def test_identity_based_storage():
    settings = load_settings(
        {
            "AzureWebJobsStorage__accountName": "bridgeacct",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
        }
    )
    storage = settings.storage
    assert storage.connection_string is None
    assert storage.queue_service_uri == "https://bridgeacct.queue.core.windows.net"
    assert storage.table_service_uri == "https://bridgeacct.table.core.windows.net"
    assert storage.managed_identity_client_id == "11111111-2222-3333-4444-555555555555"


def test_identity_based_storage_without_managed_identity_has_no_client_id():
    settings = load_settings(
        {"AzureWebJobsStorage__accountName": "bridgeacct", "AzureWebJobsStorage__clientId": "ignored"}
    )
    assert settings.storage.managed_identity_client_id is None
    assert settings.storage.queue_service_uri == "https://bridgeacct.queue.core.windows.net"


def test_identity_based_storage_with_explicit_service_uris():
    settings = load_settings(
        {
            "AzureWebJobsStorage__queueServiceUri": "http://127.0.0.1:10001/devstoreaccount1",
            "AzureWebJobsStorage__tableServiceUri": "http://127.0.0.1:10002/devstoreaccount1",
            "AzureWebJobsStorage__blobServiceUri": "http://127.0.0.1:10000/devstoreaccount1",
        }
    )
    assert settings.storage.queue_service_uri == "http://127.0.0.1:10001/devstoreaccount1"
    assert settings.storage.table_service_uri == "http://127.0.0.1:10002/devstoreaccount1"
    assert settings.storage.blob_service_uri == "http://127.0.0.1:10000/devstoreaccount1"


def test_identity_based_storage_needs_the_blob_uri_for_big_results():
    with pytest.raises(SettingsError, match="blobServiceUri"):
        load_settings(
            {
                "AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net",
                "AzureWebJobsStorage__tableServiceUri": "https://a.table.core.windows.net",
            }
        )


def test_max_dequeue_count_follows_host_json_and_its_app_setting_override():
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert load_settings(base).poll_max_dequeue_count == 5  # host.json extensions.queues.maxDequeueCount
    # Azure Functions docs, functions-host-json.md, "Override host.json values": an app setting
    # AzureFunctionsJobHost__path__to__setting overrides the host.json value.
    assert (
        load_settings(
            {**base, "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "3"}
        ).poll_max_dequeue_count
        == 3
    )
    assert load_settings({**base, "RESULTS_CONTAINER": "big-results"}).results_container == "big-results"
    with pytest.raises(SettingsError, match="RESULTS_CONTAINER"):
        load_settings({**base, "RESULTS_CONTAINER": "Bad_Name"})


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"AzureWebJobsStorage": "   "},
        {"AzureWebJobsStorage__credential": "managedidentity"},
        {"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net"},
    ],
)
def test_missing_storage_names_the_setting(values):
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        load_settings(values)


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("GRAPH_BASE_URL", "https://graph.microsoft.com/beta/", "graph_base_url", "https://graph.microsoft.com/beta"),
        ("GRAPH_BASE_URL", "http://127.0.0.1:7300/v1.0", "graph_base_url", "http://127.0.0.1:7300/v1.0"),
        ("POLL_INITIAL_DELAY_SECONDS", "0", "poll_initial_delay", 0.0),
        ("POLL_INITIAL_DELAY_SECONDS", "2.5", "poll_initial_delay", 2.5),
        ("POLL_MAX_DELAY_SECONDS", "240", "poll_max_delay", 240.0),
        ("POLL_MAX_DELAY_SECONDS", "30", "poll_max_delay", 30.0),
        ("OPERATION_TIMEOUT_SECONDS", "60", "operation_timeout", 60.0),
        ("POLL_MAX_TRANSIENT_FAILURES", "0", "max_transient_failures", 0),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true", "webhook_allow_private_networks", True),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "YES", "webhook_allow_private_networks", True),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "1", "webhook_allow_private_networks", True),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "off", "webhook_allow_private_networks", False),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "False", "webhook_allow_private_networks", False),
        ("POLL_QUEUE", "my-polls-2", "poll_queue", "my-polls-2"),
        ("WEBHOOK_QUEUE", "hooks", "webhook_queue", "hooks"),
        ("OPERATIONS_TABLE", "Ops2024", "operations_table", "Ops2024"),
    ],
)
def test_overrides(name, value, attribute, expected):
    assert getattr(load_settings(env(**{name: value})), attribute) == expected


def test_webhook_secret_is_parsed():
    key = b"k" * 24
    settings = load_settings(env(WEBHOOK_SECRET="whsec_" + base64.b64encode(key).decode()))
    assert settings.webhook_secrets == (key,)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_MAX_DELAY_SECONDS", "241"),
        ("POLL_MAX_DELAY_SECONDS", "0.5"),
        ("POLL_MAX_DELAY_SECONDS", "four"),
        ("POLL_INITIAL_DELAY_SECONDS", "-1"),
        ("POLL_INITIAL_DELAY_SECONDS", "300"),  # above the (default) max delay
        ("OPERATION_TIMEOUT_SECONDS", "0"),
        ("OPERATION_TIMEOUT_SECONDS", "604801"),
        ("POLL_MAX_TRANSIENT_FAILURES", "101"),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "maybe"),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "2"),
        ("POLL_QUEUE", "Polls"),
        ("POLL_QUEUE", "ab"),
        ("POLL_QUEUE", "bad_queue"),
        ("POLL_QUEUE", "q" * 57),
        ("WEBHOOK_QUEUE", "hooks!"),
        ("OPERATIONS_TABLE", "ops-table"),
        ("OPERATIONS_TABLE", "1ops"),
        ("OPERATIONS_TABLE", "ab"),
        ("GRAPH_BASE_URL", "graph.microsoft.com/v1.0"),
        ("GRAPH_BASE_URL", "ftp://graph.microsoft.com"),
        ("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0?x=1"),
    ],
)
def test_bad_settings_raise(name, value):
    with pytest.raises(SettingsError):
        load_settings(env(**{name: value}))


@pytest.mark.parametrize("value", ["whsec_%%%", "whsec_" + base64.b64encode(b"short").decode()])
def test_bad_webhook_secret_is_refused(value):
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        load_settings(env(WEBHOOK_SECRET=value))


@pytest.mark.parametrize("value", ["whsec_%%%", "whsec_" + base64.b64encode(b"short").decode()])
def test_bad_webhook_secret_is_a_settings_error(value):
    with pytest.raises(SettingsError):
        load_settings(env(WEBHOOK_SECRET=value))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_MAX_DELAY_SECONDS", "241"),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "maybe"),
        ("POLL_QUEUE", "Bad_Queue"),
        ("OPERATIONS_TABLE", "ops-table"),
        ("GRAPH_BASE_URL", "ftp://x"),
    ],
)
def test_settings_error_message_names_the_setting(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings(env(**{name: value}))
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com"),
        ("https://graph.microsoft.com:443/v1.0/me", "https://graph.microsoft.com"),
        ("HTTPS://Graph.Microsoft.COM/beta", "https://graph.microsoft.com"),
        ("http://example.com:80/x", "http://example.com"),
        ("http://example.com:443/x", "http://example.com:443"),
        ("https://example.com:80/x", "https://example.com:80"),
        ("http://127.0.0.1:7300/v1.0", "http://127.0.0.1:7300"),
        ("https://[::1]:8443/x", "https://[::1]:8443"),
        ("https://[::1]/x", "https://[::1]"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]"),
        ("https://user:pw@example.com/x", "https://example.com"),
        ("https://example.com?x=1#f", "https://example.com"),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def test_origin_of_distinguishes_hosts_and_ports():
    assert origin_of("https://graph.microsoft.com/") != origin_of("https://graph.microsoft.com.evil.io/")
    assert origin_of("https://graph.microsoft.com/") != origin_of("http://graph.microsoft.com/")
    assert origin_of("https://graph.microsoft.com/") != origin_of("https://graph.microsoft.com:8443/")


def test_storage_clients_refuse_an_incomplete_identity_connection_even_under_python_o():
    """It was an `assert` (bandit B101): gone under `python -O`, the clients were built with no endpoint."""
    from dataclasses import replace

    from shared.runtime.settings import StorageConnection
    from shared.runtime.worker import _clients

    settings = replace(load_settings(env()), storage=StorageConnection(queue_service_uri="https://a.queue/"))
    with pytest.raises(SettingsError, match="tableServiceUri"):
        _clients(settings)


@pytest.mark.parametrize(
    "name, value",
    [
        ("WORKBOOK_CONCURRENCY", "-1"),
        ("WORKBOOK_CONCURRENCY", "1.5"),
        ("WORKBOOK_CONCURRENCY", "101"),
        ("LANE_LEASE_SECONDS", "1"),
        ("LANE_LEASE_SECONDS", "soon"),
    ],
)
def test_lane_settings_are_checked(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**env(), name: value})


def test_workbook_concurrency_zero_turns_the_lane_off():
    assert load_settings({**env(), "WORKBOOK_CONCURRENCY": "0"}).workbook_concurrency == 0


# Issue 18, item 9a: `str.isdigit` and `float` accept digits that are not ASCII. "²" passed isdigit and then
# made int() raise ValueError (an unexpected error, answered 500 internalError); "٣" (Arabic-Indic three) and
# U+FF13 (fullwidth three) were read as 3. A setting is an ASCII number or the bridge is misconfigured.
NOT_ASCII_NUMBERS = ["\u00b2", "\u0663", "\uff13", "1\u00b2", "\u0664.5", "1_000", "\u00bd"]


@pytest.mark.parametrize("value", NOT_ASCII_NUMBERS, ids=ascii)
@pytest.mark.parametrize(
    "name",
    [
        "RETENTION_DAYS",
        "WORKBOOK_CONCURRENCY",
        "POLL_INITIAL_DELAY_SECONDS",
        "POLL_MAX_DELAY_SECONDS",
        "OPERATION_TIMEOUT_SECONDS",
        "POLL_MAX_TRANSIENT_FAILURES",
        "WEBHOOK_RETRY_INITIAL_DELAY_SECONDS",
        "WEBHOOK_RETRY_WINDOW_SECONDS",
        "LANE_LEASE_SECONDS",
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount",
    ],
)
def test_a_number_setting_that_is_not_ascii_is_a_settings_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env(**{name: value}))
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPERATIONS_TABLE", "ops\u00e9"),  # str.isalnum: a letter, but not one a table name may hold
        ("OPERATIONS_TABLE", "ops\u0663"),
        ("DURATION_HISTORY_TABLE", "dur\u00b2"),
        ("RESULTS_CONTAINER", "results-\u0663"),
        ("POLL_QUEUE", "polls-\u00e9"),
        ("WEBHOOK_QUEUE", "hooks-\u0663"),
    ],
    ids=ascii,
)
def test_a_storage_name_that_is_not_ascii_is_a_settings_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env(**{name: value}))
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("RETENTION_DAYS", "7", "retention_days", 7),
        ("POLL_INITIAL_DELAY_SECONDS", " 2.5 ", "poll_initial_delay", 2.5),
        ("POLL_INITIAL_DELAY_SECONDS", ".5", "poll_initial_delay", 0.5),
        ("OPERATION_TIMEOUT_SECONDS", "1e3", "operation_timeout", 1000.0),
        ("POLL_MAX_TRANSIENT_FAILURES", "8", "max_transient_failures", 8),
    ],
)
def test_ascii_numbers_still_parse(name: str, value: str, attribute: str, expected: object) -> None:
    assert getattr(load_settings(env(**{name: value})), attribute) == expected


@pytest.mark.parametrize("value", ["\u00b2", "\u0663"], ids=ascii)
def test_the_http_answer_to_a_non_ascii_setting_is_misconfigured_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """What a caller sees when RETENTION_DAYS holds "²": `misconfigured` naming the setting, not `internalError`
    (the worker builds its runtime, and so reads its settings, on the first request: function_app._run)."""
    import asyncio
    import json

    import azure.functions as func

    import function_app

    async def runtime() -> object:
        return load_settings(env(RETENTION_DAYS=value))

    monkeypatch.setattr(function_app, "get_runtime", runtime)
    request = func.HttpRequest("GET", "https://bridge.example.test/api/operations", body=b"", params={})
    response = asyncio.run(function_app.list_operations(request))
    problem = json.loads(response.get_body())
    assert (response.status_code, problem["code"]) == (500, "misconfigured")
    assert "RETENTION_DAYS" in problem["detail"]
    assert response.mimetype == "application/problem+json"
