"""Reaching a sink from the API: SSRF check, the CloudEvents webhook handshake, test events.

Each call opens its own short-lived guarded sender: these are rare, operator-driven requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub.api.context import ApiContext
from hub.api.problems import ProblemError
from schemas import CloudEvent
from schemas.hub_events import SUBSCRIPTION_TEST
from subscriptions.delivery import DeliveryClient, DeliveryTarget, HandshakeResult
from subscriptions.sender import DeliveryOutcome, WebhookSender
from subscriptions.ssrf import SinkRefused, SinkUnresolvable, check_sink


def _refused(field: str, title: str, detail: str) -> ProblemError:
    return ProblemError(400, title, detail, errors=[{"field": field, "message": detail}])


async def check_reachable(
    ctx: ApiContext, sink: str, auth: Mapping[str, Any], *, validate: bool
) -> HandshakeResult:
    """Refuse blocked sinks; run the handshake unless ``validate`` is false.

    An unresolvable, unreachable or refusing sink is a 400 naming ``sink`` unless ``validate``
    is false; a sink answering 404/405/501 to OPTIONS is accepted as ``unsupported``.
    """
    try:
        await check_sink(sink, ctx.network_policy)
    except SinkUnresolvable as e:
        if validate:
            raise _refused("sink", "Sink unreachable", f"{e} (set validate=false to subscribe anyway)") from e
    except SinkRefused as e:
        raise _refused("sink", "Sink refused", str(e)) from e
    for field, url in _egress_urls(auth):
        try:
            await check_sink(url, ctx.network_policy)
        except SinkUnresolvable:
            pass  # checked again at connect time; only blocked networks are refused here
        except SinkRefused as e:
            raise _refused(field, "Address refused", str(e)) from e
    if not validate:
        return HandshakeResult("skipped")
    d = ctx.settings.delivery
    async with WebhookSender(ctx.network_policy, timeout_s=d.handshake_timeout_seconds) as sender:
        result = await DeliveryClient(sender, proxy=d.proxy).handshake(
            sink, d.request_origin, auth, timeout_s=d.handshake_timeout_seconds
        )
    if not result.acceptable:
        raise _refused(
            "sink",
            "Sink handshake failed",
            f"the CloudEvents webhook handshake failed ({result.status}: {result.detail}); "
            "set validate=false to subscribe anyway",
        )
    return result


def _egress_urls(auth: Mapping[str, Any]) -> list[tuple[str, str]]:
    urls = []
    oauth2 = auth.get("oauth2")
    if oauth2:
        urls.append(("auth.oauth2.tokenUrl", str(oauth2["token_url"])))
    return urls


async def send_test_event(ctx: ApiContext, subscription_id: uuid.UUID) -> tuple[str, DeliveryOutcome]:
    """Send one signed test event the way deliveries go; returns its id and the outcome."""
    target = await ctx.subscriptions.signing_target(subscription_id)
    event = CloudEvent(
        specversion="1.0",
        id=str(uuid.uuid4()),
        source=ctx.settings.source_urn,
        type=SUBSCRIPTION_TEST,
        subject=str(subscription_id),
        time=datetime.now(UTC),
        datacontenttype="application/json",
        data={"subscriptionId": str(subscription_id), "message": "Koppelhub test delivery"},
    )
    d = ctx.settings.delivery
    async with WebhookSender(ctx.network_policy, timeout_s=d.timeout_seconds) as sender:
        outcome = await DeliveryClient(sender, proxy=d.proxy).deliver(
            DeliveryTarget(target.sink, target.secrets, target.headers, target.content_mode, target.auth),
            event.to_structured(),
            f"test-{event.id}",
        )
    return event.id, outcome
