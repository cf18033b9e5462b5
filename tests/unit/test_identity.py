"""Who the caller is, and when the principal headers are trusted."""

from __future__ import annotations

import base64
import json

from shared.api.identity import Caller, caller_from_headers


def principal(**claims: object) -> str:
    flat = [{"typ": k, "val": v} for k, vs in claims.items() for v in (vs if isinstance(vs, list) else [vs])]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": flat}).encode()).decode()


def test_trusted_principal_gives_tenant_and_object_owner() -> None:
    caller = caller_from_headers(
        {"x-ms-client-principal": principal(tid="t1", oid="o1", roles=["A"])},
        auth_enabled=True,
        default_owner="default",
    )
    assert caller == Caller("t1/o1", "t1", "o1", frozenset({"A"}))
    assert not caller.reads_all and caller.may_see("t1/o1") and not caller.may_see("t1/o2")


def test_long_claim_names_are_understood() -> None:
    headers = {
        "x-ms-client-principal": principal(
            **{
                "http://schemas.microsoft.com/identity/claims/tenantid": "t",
                "http://schemas.microsoft.com/identity/claims/objectidentifier": "o",
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": "Operations.ReadAll",
            }
        )
    }
    caller = caller_from_headers(headers, auth_enabled=True, default_owner="d")
    assert caller.owner == "t/o" and caller.reads_all and caller.may_see("anyone/else")


def test_principal_headers_are_ignored_unless_authentication_is_on() -> None:
    forged = {"x-ms-client-principal": principal(tid="t1", oid="admin", roles=["Operations.ReadAll"])}
    caller = caller_from_headers(forged, auth_enabled=False, default_owner="default")
    assert caller == Caller("default") and not caller.reads_all


def test_unreadable_or_incomplete_principals_fall_back_to_the_default() -> None:
    for value in ("not base64!", base64.b64encode(b"[]").decode(), principal(oid="only-oid")):
        assert caller_from_headers({"x-ms-client-principal": value}, auth_enabled=True, default_owner="d").owner == "d"
