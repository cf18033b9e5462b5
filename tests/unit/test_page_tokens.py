"""Continuation tokens (shared/crypto/page_tokens.py, used by shared/operations/reads.py): signed, versioned, bound
to the caller's owner, the kind of list and its status filter. Everything a caller did not get from nextLink is a
400 problem naming `continuationToken`, read nothing from storage, and is never a page or a 5xx."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from shared.api.identity import READ_ALL_ROLE, Caller
from shared.api.problems import Problem
from shared.crypto.page_tokens import MAX_TOKEN_CHARS, TokenRefused, page_tokens, scope
from shared.operations import reads
from shared.operations.record import RUNNING, SUCCEEDED, Operation, iso, new_operation_id
from tests.unit.fakes import FakeClock, fake_runtime

K1 = ("k1", b"1" * 32)
K2 = ("k2", b"2" * 32)
OWN = scope(reads_all=False, owner="alice", status=None)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_token_opens_to_its_position_in_its_own_list_only() -> None:
    tokens = page_tokens((K1,))
    token = tokens.issue({"after": "0000000001abc"}, OWN)
    assert token.startswith("p1.k1.")
    assert tokens.open(token, OWN) == {"after": "0000000001abc"}
    for other in (
        scope(reads_all=False, owner="bob", status=None),  # another owner's
        scope(reads_all=False, owner="alice", status="running"),  # another filter's
        scope(reads_all=True, owner="alice", status=None),  # the read-all scan's
    ):
        with pytest.raises(TokenRefused):
            tokens.open(token, other)


def test_every_single_character_flip_is_refused() -> None:
    tokens = page_tokens((K1,))
    token = tokens.issue({"PartitionKey": "1!8!b3BlcmF0", "RowKey": "1!12!b3BlcmF0aW9u"}, OWN)
    flipped = 0
    for i, char in enumerate(token):
        for other in {"A", "B", ".", "_"} - {char}:
            with pytest.raises(TokenRefused):
                tokens.open(token[:i] + other + token[i + 1 :], OWN)
            flipped += 1
    assert flipped >= 3 * len(token)


@pytest.mark.parametrize(
    "forged",
    [
        {"PartitionKey": "1!12!b3BlcmF0aW9u", "RowKey": "1!12!b3BlcmF0aW9u"},
        {"nextpartitionkey": "1!12!b3BlcmF0aW9u", "nextrowkey": "1!12!b3BlcmF0aW9u"},
        {"after": "0"},
        {"after": "\ud800"},  # issue 18 item 3: a lone surrogate answered 500 (UnicodeEncodeError)
    ],
    ids=["storage keys", "lower-case storage keys", "after", "lone surrogate"],
)
def test_forged_positions_are_refused_plain_or_in_token_form(forged: dict[str, str]) -> None:
    tokens = page_tokens((K1,))
    payload = b64(json.dumps(forged).encode())
    for token in (payload, f"p1.k1.{payload}.{b64(b'x' * 32)}", f"p1.k1.{payload}."):
        with pytest.raises(TokenRefused):
            tokens.open(token, OWN)


def test_a_signed_payload_that_is_not_a_clean_position_is_still_refused() -> None:
    # Defence in depth: even under the right key, odd values never reach a query (a leak or a bug cannot).
    tokens = page_tokens((K1,))
    for position in ({"after": "\ud800"}, {"after": "a\nb"}, {"after": ""}, {"after": 1}, {}):
        issued = tokens.issue(position, OWN)  # type: ignore[arg-type]
        with pytest.raises(TokenRefused):
            tokens.open(issued, OWN)


def test_rotation_keeps_tokens_of_a_listed_key_and_drops_those_of_a_retired_one() -> None:
    token = page_tokens((K1,)).issue({"after": "x"}, OWN)
    assert page_tokens((K2, K1)).open(token, OWN) == {"after": "x"}  # new key prepended: old tokens still open
    assert page_tokens((K2, K1)).issue({"after": "x"}, OWN).startswith("p1.k2.")  # the newest signs
    with pytest.raises(TokenRefused):
        page_tokens((K2,)).open(token, OWN)  # retired


def test_keys_are_derived_not_the_status_link_keys_themselves() -> None:
    assert page_tokens((K1,)).keys[0][1] != K1[1] and len(page_tokens((K1,)).keys[0][1]) == 32


@pytest.mark.parametrize(
    "token",
    ["p2.k1.e30.AAAA", "p1.k1.e30", "p1..e30.AAAA", "é" * 10, "p1.k1." + "A" * MAX_TOKEN_CHARS + ".AAAA", "%00"],
    ids=["other version", "three parts", "no key id", "not ASCII", "too long", "percent"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenRefused):
        page_tokens((K1,)).open(token, OWN)


# ---- through the HTTP side's use case (the real store over the fake table)
def _record(owner: str, at: float, status: str) -> Operation:
    return Operation(
        id=new_operation_id(at),
        status=status,
        action="createSession",
        workbook="/me/drive/items/01X",
        operation_url=None,
        created_at=iso(at),
        updated_at=iso(at),
        base_url="http://x/api",
        completed_at=None if status == RUNNING else iso(at),
        owner=owner,
    )


def _world(clock: FakeClock) -> tuple[Any, Any, list[str]]:
    rt, f = fake_runtime()
    made = []
    for i in range(5):
        op = _record("alice" if i != 2 else "bob", clock.now, RUNNING if i % 2 else SUCCEEDED)
        made.append(asyncio.run(rt.store.create(op)).id)
        clock.advance(1)
    return rt, f, made


def _refused(call: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        asyncio.run(call)
    return caught.value


ALICE, BOB = Caller("alice"), Caller("bob")
ADMIN = Caller("admin", roles=frozenset({READ_ALL_ROLE}))


def test_valid_tokens_page_through_the_index_and_the_read_all_scan(clock: FakeClock) -> None:
    rt, _, made = _world(clock)
    for caller, expected in ((ALICE, [m for i, m in enumerate(made) if i != 2]), (ADMIN, made)):
        seen, token = [], None
        for _ in range(10):
            page = asyncio.run(reads.list_page(rt, None, "2", token, caller))
            seen += [op.id for op in page.operations]
            token = page.continuation
            if token is None:
                break
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))


def test_the_use_case_answers_each_kind_of_bad_token_with_a_400_before_any_read(clock: FakeClock) -> None:
    rt, f, _ = _world(clock)
    alices = asyncio.run(reads.list_page(rt, None, "1", None, ALICE)).continuation
    running = asyncio.run(reads.list_page(rt, RUNNING, "1", None, ALICE)).continuation
    admins = asyncio.run(reads.list_page(rt, None, "1", None, ADMIN)).continuation
    assert alices and running and admins
    storage = b64(json.dumps({"PartitionKey": "1!1!x", "RowKey": "1!12!b3BlcmF0aW9u"}).encode())
    cases = [
        (None, alices[:-1] + ("A" if alices[-1] != "A" else "B"), ALICE),  # one character flipped
        (None, storage, ADMIN),  # forged storage keys on the scan
        (None, b64(b'{"nextpartitionkey":"1!1!x","nextrowkey":"1!1!y"}'), ADMIN),
        (None, b64(b'{"after":"\\ud800"}'), ALICE),  # lone surrogate (issue 18 item 3)
        (None, alices, BOB),  # another owner's
        (SUCCEEDED, running, ALICE),  # another filter's
        (None, running, ALICE),  # a filtered list's token on the unfiltered list
        (None, admins, ALICE),  # the read-all scan's token on an own list
    ]
    f.table.calls.clear()
    for method in ("query_entities", "get_entity"):  # any storage read now fails the test with a 503, not a 400
        f.table.fail(method, times=1000)
    for status, token, caller in cases:
        problem = _refused(reads.list_page(rt, status, "5", token, caller))
        assert (problem.status, problem.code, problem.errors[0].field) == (400, "invalidRequest", "continuationToken")
        assert problem.body()["target"] == "continuationToken"
    assert [m for m, _, _ in f.table.calls] == []  # refused before any storage read
