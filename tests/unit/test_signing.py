"""Standard Webhooks signing, proved against the reference verifier."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from subscriptions.signing import generate_secret, sign, sign_many, webhook_headers

BODY = json.dumps(
    {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:nld:oin:00000001234567890000:systeem:softwarecatalogus",
        "type": "nl.softwarecatalogus.gebruik.gewijzigd.v1",
        "data": {"naam": "Zaaksysteem gemeente Súdwest-Fryslân, Ede"},  # non-ASCII on purpose
    },
    ensure_ascii=False,
).encode()
MSG_ID = "msg_2b7f0c1e-delivery-1"


def now() -> int:
    return int(time.time())


def test_generated_secret_has_prefix_and_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_signature_verifies_with_reference_verifier() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, MSG_ID, now(), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_sign_matches_reference_signer_exactly() -> None:
    from datetime import UTC, datetime

    secret = generate_secret()
    ts = now()
    expected = Webhook(secret).sign(MSG_ID, datetime.fromtimestamp(ts, UTC), BODY.decode())
    assert sign(secret, MSG_ID, ts, BODY) == expected


def test_known_vector() -> None:
    # Fixed inputs so a change in the signed content format cannot go unnoticed.
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert sign(secret, "msg_1", 1_700_000_000, b'{"a":1}') == (
        "v1,tDnYFrCIK4MQWDoOot4FXQ7/xKQ3Ta7J5hEfw60KmoA="
    )


def test_unpadded_secret_is_accepted_like_the_reference() -> None:
    secret = generate_secret().rstrip("=")
    headers = webhook_headers(secret, MSG_ID, now(), BODY)
    Webhook(secret).verify(BODY, headers)


def test_rotation_signatures_verify_with_either_secret() -> None:
    old, new = generate_secret(), generate_secret()
    ts = now()
    value = sign_many([new, old], MSG_ID, ts, BODY)
    assert len(value.split(" ")) == 2
    assert webhook_headers([new, old], MSG_ID, ts, BODY)["webhook-signature"] == value
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(ts), "webhook-signature": value}
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_tampered_body_fails_verification() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, MSG_ID, now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"Ede", b"Epe"), headers)


def test_tampered_id_or_timestamp_fails_verification() -> None:
    secret = generate_secret()
    ts = now()
    headers = webhook_headers(secret, MSG_ID, ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(ts - 1)})


def test_wrong_secret_fails_verification() -> None:
    headers = webhook_headers(generate_secret(), MSG_ID, now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_bad_secrets_and_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        sign("whsec_not*base64", MSG_ID, now(), BODY)
    with pytest.raises(ValueError, match="empty"):
        sign("whsec_", MSG_ID, now(), BODY)
    with pytest.raises(ValueError, match="at least one secret"):
        sign_many([], MSG_ID, now(), BODY)
    with pytest.raises(TypeError, match="sequence of secrets"):
        sign_many(generate_secret(), MSG_ID, now(), BODY)
