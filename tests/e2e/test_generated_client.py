"""A client nobody here wrote: `openapi-python-client` generates one from the document a running bridge serves
(`GET /api/openapi.json`), and every call below goes through the generated code, as a user of the document would.

What this guards: the document describes what the API accepts *as clients read it*. A generated model sends every
property that has a `default` (openapi-python-client makes the default the attribute's value, not UNSET), so a
default the API refuses without another field (`callbackFormat` without `callbackUrl`) breaks the most ordinary
start. The generator runs once per module, without its post hooks (no formatter on the generated files).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import wait_for

from .harness import Bridge, BridgeFactory, Emulator, WebhookReceiver, new_item

PACKAGE = "bridge_client"


@pytest.fixture(scope="module")
def generated_bridge(make_bridge: BridgeFactory) -> Bridge:
    """A bridge of its own, so the list holds only this module's operations."""
    return make_bridge("genclient")


@pytest.fixture(scope="module")
def client_package(generated_bridge: Bridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The generated package (generated from the served document), importable as `bridge_client`."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--url",
            f"{generated_bridge.api}/openapi.json",
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # nothing of the document skipped
    sys.path.insert(0, str(root))
    yield root / PACKAGE
    sys.path.remove(str(root))
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def gen(client_package: Path, name: str) -> ModuleType:
    """A module of the generated package, e.g. gen(pkg, "api.default.start_operation")."""
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(scope="module")
def client(client_package: Path, generated_bridge: Bridge) -> Any:
    return gen(client_package, "client").Client(base_url=generated_bridge.api, raise_on_unexpected_status=True)


def start(client_package: Path, client: Any, item: str, **fields: Any) -> Any:
    """POST /api/operations with the generated createSession start (one start schema per action, chosen by
    `action`), through the generated call."""
    models = gen(client_package, "models")
    request = models.StartCreateSession(
        workbook=f"/me/drive/items/{item}", action=models.StartCreateSessionAction.CREATESESSION, **fields
    )
    return gen(client_package, "api.default.start_operation").sync_detailed(client=client, body=request)


def test_start_follow_the_signed_status_url_and_get(
    client_package: Path, client: Any, generated_bridge: Bridge, emulator: Emulator
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=2)
    answer = start(client_package, client, item)
    assert answer.status_code == 202, answer.content
    models = gen(client_package, "models")
    assert isinstance(answer.parsed, models.Operation)
    operation_id = answer.parsed.id

    # The Location is the signed status URL; its parts are what the generated call takes.
    location = urlsplit(answer.headers["location"])
    assert location.path == f"/api/status/{operation_id}"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    by_link = gen(client_package, "api.default.get_operation_by_signed_url")
    anonymous = gen(client_package, "client").Client(base_url=generated_bridge.api, raise_on_unexpected_status=True)
    seen: list[int] = []

    def finished() -> Any:
        polled = by_link.sync_detailed(operation_id, client=anonymous, se=query["se"], sig=query["sig"])
        seen.append(int(polled.status_code))
        assert polled.status_code in (200, 202), polled.content
        return polled.parsed if polled.status_code == 200 else None

    done = wait_for(finished, 60, "the signed status URL to answer 200", interval=0.3)
    assert 202 in seen and done.status == models.OperationStatus.SUCCEEDED
    assert done.result["persistChanges"] is True

    got = gen(client_package, "api.default.get_operation").sync_detailed(operation_id, client=client)
    assert got.status_code == 200 and got.parsed.id == operation_id
    assert got.parsed.status == models.OperationStatus.SUCCEEDED


def test_list_pages_with_the_continuation_token_of_next_link(
    client_package: Path, client: Any, emulator: Emulator
) -> None:
    started = []
    for _ in range(3):
        item = new_item()
        emulator.scenario(item, mode="sync")
        answer = start(client_package, client, item, client_reference="paging")
        assert answer.status_code == 200, answer.content  # Graph answered at once: the record is terminal
        started.append(answer.parsed.id)
    listing = gen(client_package, "api.default.list_operations")
    seen: list[str] = []
    token: Any = gen(client_package, "types").UNSET
    for _ in range(50):
        page = listing.sync_detailed(client=client, top=1, continuation_token=token)
        assert page.status_code == 200, page.content
        seen += [op.id for op in page.parsed.value]
        if not page.parsed.next_link:
            break
        token = parse_qs(urlsplit(page.parsed.next_link).query)["continuationToken"][0]
    assert set(started) <= set(seen) and len(seen) == len(set(seen))  # every one once, page by page

    # A token the bridge did not issue is a problem the generated model reads, naming the field.
    refused = listing.sync_detailed(client=client, top=1, continuation_token=token[:-2] + "xx")
    assert refused.status_code == 400
    assert refused.parsed.code == "invalidRequest" and refused.parsed.field == "continuationToken"


def test_cancel_by_id_and_by_the_signed_url(client_package: Path, client: Any, emulator: Emulator) -> None:
    models = gen(client_package, "models")
    by_id, by_link = [], []
    for bucket in (by_id, by_link):
        item = new_item()
        emulator.scenario(item, runningPolls=10_000)
        answer = start(client_package, client, item)
        assert answer.status_code == 202, answer.content
        bucket.append(answer)
    canceled = gen(client_package, "api.default.cancel_operation").sync_detailed(by_id[0].parsed.id, client=client)
    assert canceled.status_code == 200 and canceled.parsed.status == models.OperationStatus.CANCELED

    location = urlsplit(by_link[0].headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    through_link = gen(client_package, "api.default.cancel_operation_by_signed_url").sync_detailed(
        by_link[0].parsed.id, client=client, se=query["se"], sig=query["sig"]
    )
    assert through_link.status_code == 200 and through_link.parsed.status == models.OperationStatus.CANCELED


def test_subscriptions_create_list_get_delete(client_package: Path, client: Any, receiver: WebhookReceiver) -> None:
    models = gen(client_package, "models")
    created = gen(client_package, "api.default.create_subscription").sync_detailed(
        client=client,
        body=models.SubscriptionRequest(
            callback_url=receiver.new_url(), statuses=[models.SubscriptionRequestStatusesItem.SUCCEEDED]
        ),
    )
    assert created.status_code == 201, created.content
    subscription = created.parsed
    assert subscription.callback_format == models.SubscriptionCallbackFormat.BINARY  # the API's own default

    listed = gen(client_package, "api.default.list_subscriptions").sync_detailed(client=client)
    assert subscription.id in [s.id for s in listed.parsed.value]
    got = gen(client_package, "api.default.get_subscription").sync_detailed(subscription.id, client=client)
    assert got.status_code == 200 and got.parsed.statuses == ["succeeded"]
    deleted = gen(client_package, "api.default.delete_subscription").sync_detailed(subscription.id, client=client)
    assert deleted.status_code == 204
    gone = gen(client_package, "api.default.get_subscription").sync_detailed(subscription.id, client=client)
    assert gone.status_code == 404 and gone.parsed.code == "subscriptionNotFound"
