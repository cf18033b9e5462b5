"""Signed status URLs (shared/crypto/status_links.py): the credential a poller that re-sends only the URL can use.

Why they exist: Logic Apps follows `Location` with only the action's `authentication` (Azure/logicapps#611,
"we use the authentication specified on the action on any follow-up calls made on the url returned in the
location header"), and Power Automate sends none (MicrosoftDocs/architecture-center#4307).
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest

from shared.crypto.keyring import KeyringError
from shared.crypto.status_links import (
    LINK_LIFETIME_SECONDS,
    LinkRefused,
    LinkSigner,
    link_expiry,
    link_params,
    parse_link_keys,
)

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()
OP = "8285435199999a1b2c3d4e5"
OTHER = "8285435199999ffffffffff"
NOW = 1_800_000_000.0


def signed(signer: LinkSigner, op: str = OP, expires: int = int(NOW) + 60) -> tuple[str, str]:
    query = parse_qs(signer.query(op, expires))
    return query["se"][0], query["sig"][0]


def test_a_signed_url_opens_its_own_operation():
    signer = parse_link_keys(f"k1:{KEY_A}")
    se, sig = signed(signer)
    signer.verify(OP, se, sig, NOW)  # no exception
    assert sig.startswith("k1.")


def test_the_same_operation_always_gets_the_same_url():
    # Logic Apps expects the same Location on every 202 (logic-apps-create-api-app.md)
    signer = parse_link_keys(f"k1:{KEY_A}")
    assert signer.query(OP, 123) == signer.query(OP, 123)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda se, sig: (se, sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")), "does not match"),
        (lambda se, sig: (str(int(se) + 1), sig), "does not match"),  # a longer life is not for the holder to pick
        (lambda se, sig: (se, "k9." + sig.split(".", 1)[1]), "does not match"),
        (lambda se, sig: (None, sig), "no credential"),
        (lambda se, sig: (se, None), "no credential"),
        (lambda se, sig: ("\uff11\uff12", sig), "whole number"),  # full-width digits pass str.isdigit
        (lambda se, sig: ("9" * 13, sig), "whole number"),
        # issue 18 item 9b: the MAC covers int(se), so "0" + se was a second URL with the same signature
        (lambda se, sig: ("0" + se, sig), "leading zeros"),
        (lambda se, sig: ("000" + se, sig), "leading zeros"),
        (lambda se, sig: ("0", sig), "leading zeros"),
    ],
)
def test_a_tampered_url_is_refused(mutate, reason):
    signer = parse_link_keys(f"k1:{KEY_A}")
    se, sig = mutate(*signed(signer))
    with pytest.raises(LinkRefused, match=reason):
        signer.verify(OP, se, sig, NOW)


def test_a_url_does_not_open_another_operation():
    signer = parse_link_keys(f"k1:{KEY_A}")
    se, sig = signed(signer, OP)
    with pytest.raises(LinkRefused, match="does not match"):
        signer.verify(OTHER, se, sig, NOW)


def test_an_expired_url_is_refused():
    signer = parse_link_keys(f"k1:{KEY_A}")
    se, sig = signed(signer, expires=int(NOW))
    with pytest.raises(LinkRefused, match="expired"):
        signer.verify(OP, se, sig, NOW)


def test_rotation_old_urls_keep_working_while_the_old_key_is_listed():
    old = parse_link_keys(f"k1:{KEY_A}")
    se, sig = signed(old)
    rotated = parse_link_keys(f"k2:{KEY_B} k1:{KEY_A}")
    rotated.verify(OP, se, sig, NOW)
    assert signed(rotated)[1].startswith("k2.")
    retired = parse_link_keys(f"k2:{KEY_B}")
    with pytest.raises(LinkRefused):
        retired.verify(OP, se, sig, NOW)


def test_without_keys_nothing_opens_and_nothing_is_signed():
    # The runtime always has a key (shared/runtime/link_key.py); a signer without one fails loudly, never
    # falling back to an unsigned URL.
    with pytest.raises(LinkRefused, match="no status-link key"):
        LinkSigner(()).verify(OP, "1", "k1.x", NOW)
    with pytest.raises(LinkRefused, match="no status-link key"):
        LinkSigner(()).query(OP, 1)


@pytest.mark.parametrize(
    "query",
    ["se=1&se=2&sig=k1.x", "se=1&sig=k1.x&sig=k1.y", "sig=k1.x&se=1&se=1", "se=1&sig=k1.x&sig=k1.x"],
    ids=["two se", "two sig", "se repeated alike", "sig repeated alike"],
)
def test_a_url_with_se_or_sig_twice_is_refused_not_read_first_wins(query):
    # issue 18 item 9b: the first of two values was taken; hosts disagree on which (devhost: first; the
    # Functions host joins them with a comma), so neither is
    with pytest.raises(LinkRefused, match="once"):
        link_params(query)


def test_link_params_reads_each_once():
    assert link_params("se=17&sig=k1.abc&other=1&other=2") == ("17", "k1.abc")
    assert link_params("") == (None, None)


def test_bad_keys_are_a_settings_error_that_names_the_setting():
    with pytest.raises(KeyringError, match="STATUS_LINK_KEYS"):
        parse_link_keys("k1:c2hvcnQ=")


def test_a_link_lives_past_the_operations_deadline():
    assert link_expiry(1000.0, 3600.0) == 1000 + 3600 + LINK_LIFETIME_SECONDS
