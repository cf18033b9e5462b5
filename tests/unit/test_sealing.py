"""Sealing callback URLs at rest: shared.sealing."""

from __future__ import annotations

import base64

import pytest

from shared.sealing import PREFIX, SealingError, seal, unseal

OLD = b"old-webhook-secret-32-bytes-long"
NEW = b"new-webhook-secret-32-bytes-long"
OTHER = b"unrelated-secret-of-32-bytes-xyz"
URL = "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SeCrEtSiG123"
OP_ID = "8285435199999a1b2c3d4e5"


@pytest.mark.parametrize("plaintext", [URL, "", "https://example.com/é?x=ü"])
def test_round_trip(plaintext):
    token = seal(plaintext, (NEW,), OP_ID)
    assert token.startswith(PREFIX)
    assert unseal(token, (NEW,), OP_ID) == plaintext


def test_sealed_value_does_not_contain_the_plaintext():
    token = seal(URL, (NEW,), OP_ID)
    raw = base64.urlsafe_b64decode(token[len(PREFIX):])
    assert "SeCrEtSiG123" not in token
    assert b"SeCrEtSiG123" not in raw
    assert b"logic.azure.com" not in raw


def test_nonce_makes_each_seal_different():
    assert seal(URL, (NEW,), OP_ID) != seal(URL, (NEW,), OP_ID)


def test_other_associated_value_fails():
    token = seal(URL, (NEW,), OP_ID)
    with pytest.raises(SealingError):
        unseal(token, (NEW,), "8285435199999ffffffffff")


@pytest.mark.parametrize("keys", [(NEW, OLD), (OLD,), (OTHER, NEW, OLD)])
def test_rotated_key_list_opens_old_values(keys):
    token = seal(URL, (OLD,), OP_ID)
    assert unseal(token, keys, OP_ID) == URL


def test_new_values_are_sealed_with_the_first_key():
    token = seal(URL, (NEW, OLD), OP_ID)
    assert unseal(token, (NEW,), OP_ID) == URL
    with pytest.raises(SealingError):
        unseal(token, (OLD,), OP_ID)


@pytest.mark.parametrize("keys", [(OTHER,), ()])
def test_unknown_key_fails(keys):
    token = seal(URL, (OLD,), OP_ID)
    with pytest.raises(SealingError):
        unseal(token, keys, OP_ID)


def test_seal_without_keys_fails():
    with pytest.raises(SealingError):
        seal(URL, (), OP_ID)


@pytest.mark.parametrize("token", ["", URL, "s2.AAAA", "plain"])
def test_not_a_sealed_value(token):
    with pytest.raises(SealingError):
        unseal(token, (NEW,), OP_ID)


def test_tampered_ciphertext_fails():
    token = seal(URL, (NEW,), OP_ID)
    raw = bytearray(base64.urlsafe_b64decode(token[len(PREFIX):]))
    raw[-1] ^= 0x01
    tampered = PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SealingError):
        unseal(tampered, (NEW,), OP_ID)


@pytest.mark.parametrize("token", ["s1.abc", "s1.AAAA", "s1.!!!!"])
def test_corrupt_sealed_value_raises_sealing_error(token):
    with pytest.raises(SealingError):
        unseal(token, (NEW,), OP_ID)
