"""TOKEN_SEALING_KEYS: seal, open, rotate, retire."""

from __future__ import annotations

import base64
import os

import pytest

from shared.crypto.keyring import KeyringError, UnsealError, parse_keyring


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_round_trip_is_bound_to_the_operation() -> None:
    ring = parse_keyring(f"k2:{key()}")
    sealed = ring.seal("eyJ.user.token", "op-1")
    assert sealed.startswith("k1.k2.") and "eyJ" not in sealed
    assert ring.unseal(sealed, "op-1") == "eyJ.user.token"
    with pytest.raises(UnsealError, match="another operation"):
        ring.unseal(sealed, "op-2")


def test_rotation_opens_old_values_and_seals_with_the_new_key() -> None:
    old, new = key(), key()
    sealed_before = parse_keyring(f"old:{old}").seal("secret", "op")
    rotated = parse_keyring(f"new:{new} old:{old}")
    assert rotated.unseal(sealed_before, "op") == "secret"
    assert rotated.seal("secret", "op").startswith("k1.new.")


def test_a_retired_key_is_a_clear_failure() -> None:
    old = key()
    sealed = parse_keyring(f"old:{old}").seal("secret", "op")
    with pytest.raises(UnsealError, match=r"'old'.*no longer holds"):
        parse_keyring(f"new:{key()}").unseal(sealed, "op")


def test_plain_base64_keys_get_a_derived_id() -> None:
    ring = parse_keyring(key())
    assert ring.unseal(ring.seal("x", "op"), "op") == "x"


@pytest.mark.parametrize(
    "raw",
    ["k:not-base64!", f"k:{base64.b64encode(b'short').decode()}", f"a:{key()} a:{key()}", f"bad id:{key()}"],
    ids=["not-base64", "short-key", "repeated-id", "bad-id"],  # fixed ids: the keys are random (and secret-like)
)
def test_malformed_keyrings_are_refused_without_echoing_keys(raw: str) -> None:
    with pytest.raises(KeyringError) as error:
        parse_keyring(raw)
    assert raw.split(":")[-1] not in str(error.value)


def test_damaged_values_are_refused() -> None:
    ring = parse_keyring(f"k:{key()}")
    for value in ("k1.k.!!!", "k1.k.AAAA", "nope", "k1.k"):
        with pytest.raises(UnsealError):
            ring.unseal(value, "op")
