"""Pure delivery policy: what an outcome makes of a delivery, content modes, handshake verdicts."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from hub.ports.delivery import ClaimedDelivery
from hub.services.delivery_policy import RetryPolicy, next_state
from subscriptions.delivery import SharedEvent, encode, encode_binary, encode_structured, interpret_handshake
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition


def claimed(attempts: int = 0, retry_base: int = 0, schedule: list[float] | None = None) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        attempts=attempts,
        event_id="e-1",
        archive_seq=1,
        event={"type": "nl.example.thing.v1"},
        sink="https://example.org/hook",
        secret="whsec_AAAA",
        headers={},
        retry_base=retry_base,
        retry_schedule=schedule,
    )


def outcome(
    status: int | None, error: str | None = None, retry_after: float | None = None, *, gone: bool = False
) -> DeliveryOutcome:
    if gone:
        disposition = Disposition.GONE
    elif status is not None and 200 <= status < 300:
        disposition = Disposition.DELIVERED
    else:
        disposition = Disposition.RETRY
    return DeliveryOutcome(
        disposition=disposition, status_code=status, error=error, duration_ms=1.0, retry_after_s=retry_after
    )


POLICY = RetryPolicy(RetrySchedule.of([5, 30, 120]), slow_down_s=60, retry_after_max_s=3600)


def wait_of(result_next: datetime | None) -> float:
    assert result_next is not None
    return (result_next - datetime.now(UTC)).total_seconds()


def test_a_500_waits_the_scheduled_delay() -> None:
    result = next_state(claimed(), outcome(500, "http_500"), POLICY, datetime.now(UTC))
    assert result.new_status == "failed" and result.attempt == 1
    assert wait_of(result.next_attempt_at) == pytest.approx(5, abs=0.5)


@pytest.mark.parametrize("failure", [outcome(429, "http_429"), outcome(None, "timeout")])
def test_after_a_429_or_a_timeout_the_next_try_waits_at_least_the_floor(failure: DeliveryOutcome) -> None:
    result = next_state(claimed(), failure, POLICY, datetime.now(UTC))
    assert wait_of(result.next_attempt_at) == pytest.approx(60, abs=0.5)


def test_retry_after_is_honoured_within_its_bound() -> None:
    asked = next_state(claimed(), outcome(503, "http_503", retry_after=900), POLICY, datetime.now(UTC))
    assert wait_of(asked.next_attempt_at) == pytest.approx(900, abs=0.5)
    greedy = next_state(claimed(), outcome(503, "http_503", retry_after=10**7), POLICY, datetime.now(UTC))
    assert wait_of(greedy.next_attempt_at) == pytest.approx(3600, abs=0.5)


def test_after_the_last_retry_the_delivery_is_dead() -> None:
    result = next_state(claimed(attempts=3), outcome(500, "http_500"), POLICY, datetime.now(UTC))
    assert (result.new_status, result.attempt, result.next_attempt_at) == ("dead", 4, None)


def test_a_manual_retry_restarts_the_schedule() -> None:
    result = next_state(
        claimed(attempts=4, retry_base=4), outcome(500, "http_500"), POLICY, datetime.now(UTC)
    )
    assert result.new_status == "failed" and result.attempt == 5
    assert wait_of(result.next_attempt_at) == pytest.approx(5, abs=0.5)


def test_a_subscription_schedule_replaces_the_global_one() -> None:
    result = next_state(claimed(schedule=[42]), outcome(500, "http_500"), POLICY, datetime.now(UTC))
    assert wait_of(result.next_attempt_at) == pytest.approx(42, abs=0.5)
    last = next_state(claimed(attempts=1, schedule=[42]), outcome(500, "http_500"), POLICY, datetime.now(UTC))
    assert last.new_status == "dead"


def test_a_410_keeps_the_delivery_open_and_disables_the_subscription() -> None:
    result = next_state(claimed(attempts=3), outcome(410, "http_410", gone=True), POLICY, datetime.now(UTC))
    assert result.new_status == "failed" and result.disable_reason
    assert abs(wait_of(result.next_attempt_at)) < 1


def test_jitter_from_a_seeded_generator_stays_within_twenty_percent() -> None:
    policy = RetryPolicy(RetrySchedule.of([100], jitter=0.2, rng=random.Random(3)))
    waits = [
        wait_of(next_state(claimed(), outcome(500), policy, datetime.now(UTC)).next_attempt_at)
        for _ in range(50)
    ]
    assert all(79.5 <= w <= 120.5 for w in waits) and max(waits) - min(waits) > 10


def test_structured_mode_is_the_event_as_json() -> None:
    body, headers = encode_structured({"id": "1", "data": {"a": 1}})
    assert body == b'{"id":"1","data":{"a":1}}' and headers == {
        "content-type": "application/cloudevents+json"
    }


#: Values where orjson and the standard library could write different text: exponent floats, an
#: integer beyond 64 bits, text beyond ASCII, control characters and quotes.
_AWKWARD = {
    "tiny": 1.5e-05, "huge": 1e16, "plain": 0.25, "big": 123456789012345678901234567890,
    "tekst": "Gemeente 's-Hertogenbosch \u2028 café \u0000 \"x\"\n", "lijst": [1e-7, -0.0, True, None],
}  # fmt: skip


@pytest.mark.parametrize("data", [{"a": 1}, _AWKWARD, {"n": [_AWKWARD, {"k": 2.5e20}]}])
def test_a_body_is_the_bytes_the_standard_library_writes_shared_or_not(data: dict[str, object]) -> None:
    """The body (and so what the signature covers) is ``json.dumps`` compact text whichever
    encoder wrote it, for a plain event and for one shared by a fan-out's deliveries."""
    event = {"id": "1", "type": "t.v1", "data": data}
    expected = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode_structured(event)[0] == expected
    assert encode(SharedEvent(event), "structured")[0] == expected
    data_only = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode(SharedEvent(event), "binary")[0] == encode_binary(event)[0] == data_only


def test_binary_mode_moves_attributes_to_headers_and_decodes_base64_data() -> None:
    event = {
        "specversion": "1.0",
        "id": "1",
        "type": "t.v1",
        "source": "urn:x",
        "subject": 'a "b" 100%',
        "flag": True,
        "datacontenttype": "application/octet-stream",
        "data_base64": base64.b64encode(b"\x00\x01").decode(),
    }
    body, headers = encode_binary(event)
    assert body == b"\x00\x01"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["ce-subject"] == "a%20%22b%22%20100%25"
    assert headers["ce-flag"] == "true"
    assert "ce-data_base64" not in headers and "ce-datacontenttype" not in headers


def test_binary_mode_sends_text_data_as_is_under_a_text_type() -> None:
    body, headers = encode_binary({"id": "1", "datacontenttype": "text/plain", "data": "hallo"})
    assert (body, headers["content-type"]) == (b"hallo", "text/plain")


def answered(status: int | None, headers: dict[str, str] | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(
        disposition=Disposition.RETRY,
        status_code=status,
        error=None if status else "connection_error",
        duration_ms=1,
        headers=headers or {},
    )


@pytest.mark.parametrize(
    ("result", "status", "rate"),
    [
        (answered(200, {"WebHook-Allowed-Origin": "hub.example"}), "confirmed", None),
        (answered(200, {"WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "120"}), "confirmed", 2.0),
        (answered(200, {"WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "*"}), "confirmed", None),
        (answered(204), "unconfirmed", None),
        (answered(404), "unsupported", None),
        (answered(405), "unsupported", None),
        (answered(200, {"WebHook-Allowed-Origin": "other.example"}), "denied", None),
        (answered(403), "denied", None),
        (answered(None), "unreachable", None),
    ],
)
def test_the_handshake_verdict(result: DeliveryOutcome, status: str, rate: float | None) -> None:
    verdict = interpret_handshake(result, "hub.example")
    assert (verdict.status, verdict.allowed_rate) == (status, rate)
    assert verdict.acceptable == (status in ("confirmed", "unconfirmed", "unsupported"))


def test_a_claimed_delivery_signs_with_both_secrets_during_the_grace_period() -> None:
    rotated = claimed()
    assert rotated.secrets == ["whsec_AAAA"]
    both = ClaimedDelivery(**{**rotated.__dict__, "previous_secret": "whsec_BBBB"})
    assert both.secrets == ["whsec_AAAA", "whsec_BBBB"]
