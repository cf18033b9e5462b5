"""Sealing callback URLs at rest: shared.crypto.sealing."""

from __future__ import annotations

import base64

import pytest

from shared.crypto.sealing import PREFIX, SealingError, seal, unseal

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
    raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
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
    raw = bytearray(base64.urlsafe_b64decode(token[len(PREFIX) :]))
    raw[-1] ^= 0x01
    tampered = PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SealingError):
        unseal(tampered, (NEW,), OP_ID)


@pytest.mark.parametrize("token", ["s1.abc", "s1.AAAA", "s1.!!!!"])
def test_corrupt_sealed_value_raises_sealing_error(token):
    with pytest.raises(SealingError):
        unseal(token, (NEW,), OP_ID)


# Values sealed by the two sealers before they shared shared.crypto.keyring's AES-GCM (commit 7a56138): records
# already in the operations table must still open, and a new seal must keep the stored format.
S1_SEALED = {
    "op-1": (
        "s1.iZF5YBbjy8nGY3vJ7XQZv__FyODy8VmvLBwfoaBCPocpJeCQyyRNZrpjeNzDEYzZVZSnUiifJ9hJQpH0-w==",
        "https://example.com/cb?sig=abc%2F",
    ),
    "op-2": (
        "s1.HlZbk0zoKPJmipQrFddZWTNc7Tq3XH7oHRKn9_38S6PKpRIsfwa3lsbdcpjql1gBAkLYv9-F6w6fFQ==",
        "https://example.com/cb?sig=old",
    ),
}
K1_SEALED = "k1.kid1.ZRRuHuo5WotgLuBz6WVM1Ec-WNCVismnHo0T5cjW2xIHtmgz8lEys8dQPw"


@pytest.mark.parametrize("op_id", sorted(S1_SEALED))
def test_a_callback_url_sealed_before_the_unification_still_opens(op_id):
    sealed, url = S1_SEALED[op_id]
    assert unseal(sealed, (b"first-secret", b"second-secret"), op_id) == url
    with pytest.raises(SealingError):
        unseal(sealed, (b"first-secret", b"second-secret"), "another-op")


def test_a_token_sealed_before_the_unification_still_opens():
    from shared.crypto.keyring import UnsealError, parse_keyring

    ring = parse_keyring("kid1:" + base64.b64encode(b"k" * 32).decode())
    assert ring.unseal(K1_SEALED, "op-3") == "eyJ.token.value"
    with pytest.raises(UnsealError):
        ring.unseal(K1_SEALED, "op-4")


def test_the_stored_formats_are_unchanged():
    from shared.crypto.keyring import parse_keyring

    sealed = seal(URL, (NEW,), OP_ID)
    raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :])  # padded base64url of nonce | ciphertext | tag
    assert sealed.startswith("s1.") and len(raw) == 12 + len(URL.encode()) + 16
    token = parse_keyring("kid1:" + base64.b64encode(b"k" * 32).decode()).seal("eyJ.token.value", "op-3")
    kind, kid, blob = token.split(".")
    assert (kind, kid) == ("k1", "kid1") and "=" not in blob
    assert len(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))) == 12 + len("eyJ.token.value") + 16
