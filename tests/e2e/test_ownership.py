"""Every record belongs to someone: callers authenticated by (emulated) App Service Authentication see
only their own operations, unless they hold the Operations.ReadAll app role."""

from __future__ import annotations

import pytest

from .harness import Bridge, BridgeFactory, Emulator, new_item

TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://excel-bridge"


@pytest.fixture(scope="module")
def guarded(make_bridge: BridgeFactory, emulator: Emulator) -> Bridge:
    """A bridge behind Easy Auth trusting the emulator's Entra (tenant TENANT)."""
    return make_bridge(
        "owners",
        DEVHOST_AUTH_ISSUER=emulator.issuer(TENANT),
        DEVHOST_AUTH_AUDIENCES=AUDIENCE,
        DEVHOST_AUTH_ALLOWED_TENANTS=TENANT,
    )


def as_user(emulator: Emulator, oid: str, roles: list[str] | None = None, lifetime: float = 600) -> dict[str, str]:
    """The headers of a caller signed in at the emulator's Entra as user `oid`."""
    upn = f"{oid}.owners@contoso.example"
    return {
        "Authorization": "Bearer "
        + emulator.sign_in(upn, tenant=TENANT, audience=AUDIENCE, oid=oid, roles=roles or [], lifetime=lifetime)
    }


def test_callers_see_only_their_own_operations(guarded: Bridge, emulator: Emulator) -> None:
    ada, bob = as_user(emulator, "ada"), as_user(emulator, "bob")
    admin = as_user(emulator, "admin", ["Operations.ReadAll"])
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


def test_idempotency_keys_are_per_owner(guarded: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    body = {"workbook": f"/me/drive/items/{item}", "action": "createSession"}
    key = {"Idempotency-Key": f"shared-key-{item}"}
    ada = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(emulator, "ada"), **key})
    bob = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(emulator, "bob"), **key})
    again = guarded.client.post(f"{guarded.api}/operations", json=body, headers={**as_user(emulator, "ada"), **key})
    assert ada.json()["id"] != bob.json()["id"] and again.json()["id"] == ada.json()["id"]


def test_unauthenticated_and_forged_callers_are_refused(guarded: Bridge, emulator: Emulator) -> None:
    forged = {"X-MS-CLIENT-PRINCIPAL-ID": "ada", "X-MS-CLIENT-PRINCIPAL": "e30="}
    refused = guarded.client.get(f"{guarded.api}/operations", headers=forged)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    expired = guarded.client.get(f"{guarded.api}/operations", headers=as_user(emulator, "ada", lifetime=-600))
    assert expired.status_code == 401
    assert guarded.client.get(f"{guarded.api}/health").status_code == 200  # anonymous stays open


def test_without_authentication_everyone_is_the_default_owner(bridge: Bridge, emulator: Emulator) -> None:
    item = new_item()
    emulator.scenario(item, mode="sync")
    forged = {"X-MS-CLIENT-PRINCIPAL": "eyJjbGFpbXMiOltdfQ=="}
    record = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"}, **forged).json()
    assert record["owner"] == "default"
