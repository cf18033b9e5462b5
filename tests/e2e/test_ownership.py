"""Every record belongs to someone: callers authenticated by (emulated) App Service Authentication see
only their own operations, unless they hold the Operations.ReadAll app role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.oidc import AUDIENCE, TENANT, Issuer

from .conftest import BridgeFactory
from .harness import Bridge, Emulator, new_item


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def guarded(make_bridge: BridgeFactory, issuer: Issuer) -> Bridge:
    return make_bridge(
        "owners",
        DEVHOST_AUTH_ISSUER=issuer.issuer,
        DEVHOST_AUTH_AUDIENCES=AUDIENCE,
        DEVHOST_AUTH_ALLOWED_TENANTS=TENANT,
    )


def as_user(issuer: Issuer, oid: str, roles: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(oid=oid, roles=roles or [])}"}


def test_callers_see_only_their_own_operations(guarded: Bridge, emulator: Emulator, issuer: Issuer) -> None:
    ada, bob = as_user(issuer, "ada"), as_user(issuer, "bob")
    admin = as_user(issuer, "admin", ["Operations.ReadAll"])
    mine = {}
    for name, headers in (("ada", ada), ("bob", bob)):
        item = new_item()
        emulator.scenario(item, mode="sync")
        response = guarded.client.post(
            f"{guarded.api}/operations",
            headers=headers,
            json={"workbook": f"/me/drive/items/{item}", "action": "createSession"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["owner"] == f"{TENANT}/{name}"
        mine[name] = response.json()["id"]

    def get(op: str, headers: dict[str, str]) -> int:
        return guarded.client.get(f"{guarded.api}/operations/{op}", headers=headers).status_code

    assert get(mine["ada"], ada) == 200 and get(mine["bob"], bob) == 200
    assert get(mine["bob"], ada) == 404 and get(mine["ada"], bob) == 404  # others' operations do not exist
    assert get(mine["ada"], admin) == 200 and get(mine["bob"], admin) == 200

    listed = guarded.client.get(f"{guarded.api}/operations", headers=ada, params={"top": 100}).json()["value"]
    assert {r["id"] for r in listed} == {mine["ada"]}
    everyone = guarded.client.get(f"{guarded.api}/operations", headers=admin, params={"top": 100}).json()["value"]
    assert {mine["ada"], mine["bob"]} <= {r["id"] for r in everyone}

    assert guarded.client.delete(f"{guarded.api}/operations/{mine['ada']}", headers=bob).status_code == 404
    redeliver = guarded.client.post(f"{guarded.api}/operations/{mine['ada']}/webhook/redeliver", headers=bob)
    assert redeliver.status_code == 404


def test_idempotency_keys_are_per_owner(guarded: Bridge, emulator: Emulator, issuer: Issuer) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    body = {"workbook": f"/me/drive/items/{item}", "action": "createSession"}
    key = {"Idempotency-Key": f"shared-key-{item}"}
    ada = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(issuer, "ada"), **key})
    bob = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(issuer, "bob"), **key})
    again = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(issuer, "ada"), **key})
    assert ada.json()["id"] != bob.json()["id"] and again.json()["id"] == ada.json()["id"]


def test_unauthenticated_and_forged_callers_are_refused(guarded: Bridge, issuer: Issuer) -> None:
    forged = {"X-MS-CLIENT-PRINCIPAL-ID": "ada", "X-MS-CLIENT-PRINCIPAL": "e30="}
    refused = guarded.client.get(f"{guarded.api}/operations", headers=forged)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    expired = guarded.client.get(
        f"{guarded.api}/operations", headers={"Authorization": f"Bearer {issuer.token(lifetime=-600)}"}
    )
    assert expired.status_code == 401
    assert guarded.client.get(f"{guarded.api}/health").status_code == 200  # anonymous stays open


def test_without_authentication_everyone_is_the_default_owner(
    bridge: Bridge, emulator: Emulator, issuer: Issuer
) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    forged = {"X-MS-CLIENT-PRINCIPAL": "eyJjbGFpbXMiOltdfQ=="}
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}, **forged).json()
    assert record["owner"] == "default"
