"""Webhook signing (``bankwallet.core.webhooks``): Stripe's scheme, rotation, tolerance."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bankwallet.core import webhooks
from bankwallet.core.webhooks import (
    WebhookSignatureInvalid,
    WebhookTimestampOutsideTolerance,
    WebhookVerificationFailed,
    sign,
    verify,
)

SECRET = "whsec_test_0123456789abcdef"
BODY = b'{"id":"evt_1","type":"debit.succeeded"}'
T = 1_700_000_000


def test_the_header_is_stripes_scheme() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_good_signature_verifies_and_returns_its_timestamp() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 10) == T
    assert verify(SECRET, BODY.decode(), sign(SECRET, BODY, T), now=T) == T  # str body too


def test_a_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, T)
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, BODY.replace(b"debit", b"credit"), header, now=T)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify("whsec_another_secret_000000", BODY, sign(SECRET, BODY, T), now=T)


def test_a_tampered_timestamp_is_refused() -> None:
    header = sign(SECRET, BODY, T).replace(f"t={T}", f"t={T + 1}")
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, BODY, header, now=T)


@pytest.mark.parametrize("age_s", [301, 10_000, -301])
def test_a_signature_outside_the_tolerance_is_refused(age_s: int) -> None:
    header = sign(SECRET, BODY, T)
    with pytest.raises(WebhookTimestampOutsideTolerance) as caught:
        verify(SECRET, BODY, header, now=T + age_s)
    assert caught.value.code == "webhook_timestamp_outside_tolerance"
    assert isinstance(caught.value, WebhookVerificationFailed)
    assert verify(SECRET, BODY, header, now=T + age_s, tolerance_s=abs(age_s)) == T


def test_a_bad_signature_is_reported_before_an_old_timestamp() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify("whsec_another_secret_000000", BODY, sign(SECRET, BODY, T), now=T + 10_000)


def test_rotation_the_sender_signs_with_both_secrets() -> None:
    old, new = SECRET, "whsec_new_secret_9876543210"
    header = sign([new, old], BODY, T)
    assert header.count("v1=") == 2
    assert verify(old, BODY, header, now=T) == T  # a receiver not yet rotated
    assert verify(new, BODY, header, now=T) == T  # a receiver already rotated


def test_rotation_the_receiver_accepts_either_secret() -> None:
    old, new = SECRET, "whsec_new_secret_9876543210"
    assert verify([new, old], BODY, sign(old, BODY, T), now=T) == T
    assert verify([new, old], BODY, sign(new, BODY, T), now=T) == T
    with pytest.raises(WebhookSignatureInvalid):
        verify([new, old], BODY, sign("whsec_third_secret_00000000", BODY, T), now=T)


@pytest.mark.parametrize("header", [
    None, "", "garbage", f"t={T}", "v1=abcd", f"t=abc,v1={'0' * 64}", f"t=-5,v1={'0' * 64}",
    f"t={T},v0={'0' * 64}", f"t={T},v1=ÿÿ", "t=" + "9" * 40 + ",v1=00",
    f"t={T}," + ",".join(["v1=00"] * 500),
])
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, BODY, header, now=T)


def test_the_errors_are_400_problems() -> None:
    problem = WebhookSignatureInvalid("x").to_problem()
    assert problem["status"] == 400 and problem["code"] == "webhook_signature_invalid"
    assert webhooks.SIGNATURE_HEADER == "Bankwallet-Signature"


secrets_st = st.text(min_size=1, max_size=64)
timestamps_st = st.integers(min_value=0, max_value=10**11)


@given(secret=secrets_st, body=st.binary(max_size=2048), timestamp=timestamps_st)
def test_round_trip(secret: str, body: bytes, timestamp: int) -> None:
    assert verify(secret, body, sign(secret, body, timestamp), now=timestamp) == timestamp


@given(secret=secrets_st, body=st.binary(max_size=256), other=st.binary(max_size=256),
       timestamp=timestamps_st)
def test_any_other_body_is_refused(secret: str, body: bytes, other: bytes,
                                   timestamp: int) -> None:
    if other == body:
        return
    with pytest.raises(WebhookSignatureInvalid):
        verify(secret, other, sign(secret, body, timestamp), now=timestamp)
