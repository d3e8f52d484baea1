"""Write-back: connectors that consume hub events, delivered like any subscription.

A write-back is a subscription owned by a connector whose sink is internal:
``connector:<connector id>`` (protocol ``koppelhub-connector``). The dispatcher delivers it
like a webhook (at least once, the retry schedule, order per key, ``dead`` plus an alert after
the last retry, the delivery log, retry and replay) through :class:`ClientRouter`, its
``Client`` seam: internal sinks go to :class:`ConnectorSink`, every other sink to the webhook
client. ``ConnectorSink`` builds the connector from its stored config and calls
:meth:`connectors.base.Connector.apply`, publishes the outcome event for the requester and
answers the dispatcher:

- applied (or refused by the workflow, with ``status-geweigerd`` published): delivered /
  ``PERMANENT`` (dead at once, not retried, with the reason);
- :class:`SourceUnavailable` (network, 5xx, 429): retried on the schedule;
- :class:`SourceRefused` (a 4xx retrying cannot fix, an unknown connector): ``PERMANENT``.

A kind that writes landscape objects (:meth:`connectors.base.Connector.writes`) gets the
object's fingerprint as its connector read it last, and what it wrote is kept as the new one
(``FingerprintStore.remember``), so neither direction echoes the other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from connectors import kinds as _kinds  # noqa: F401 - registers every connector kind
from connectors.base import Connector, ConnectorContext, ConnectorError, SourceRefused, SourceUnavailable
from connectors.events import import_source
from connectors.ids import NAMESPACE
from connectors.registry import create
from hub.errors import KoppelhubError, NotFound
from hub.ports import ConnectorRecord, ConnectorStore, EventLog
from hub.ports.connectors import Fingerprint, FingerprintStore, Published, SyncScope
from hub.services.dispatcher import Client, free_slot
from schemas import CloudEvent
from subscriptions.delivery import DeliveryTarget
from subscriptions.sender import DeliveryOutcome, Disposition

__all__ = ["PROTOCOL", "SINK_PREFIX", "ClientRouter", "ConnectorSink", "connector_sink"]

log = structlog.get_logger(__name__)

PROTOCOL = "koppelhub-connector"
SINK_PREFIX = "connector:"


def connector_sink(connector_id: uuid.UUID) -> str:
    return f"{SINK_PREFIX}{connector_id}"


@dataclass
class _Open:
    """A connector kept between deliveries (its HTTP pool, its rate-limit state), built from the
    record as it was at ``updated_at``; closed once replaced and no delivery uses it."""

    record: ConnectorRecord
    connector: Connector[Any]
    checked_at: float
    users: int = 0
    replaced: bool = False


class ConnectorSink:
    """Delivers an event to the connector named by the sink (see the module docstring).

    Connectors stay open between deliveries (a new one per request cost a TCP connection and a
    client each time); the record is read again at most every ``recheck_s`` seconds, and a
    changed record (config, enabled) builds a new connector."""

    def __init__(
        self,
        connectors: ConnectorStore,
        event_log: EventLog,
        context: Callable[[str, str], ConnectorContext],
        *,
        hub_urn: str,
        recheck_s: float = 2.0,
        fingerprints: FingerprintStore | None = None,
    ) -> None:
        self.connectors, self.event_log, self.context, self.hub_urn = connectors, event_log, context, hub_urn
        self.fingerprints = fingerprints
        self.recheck_s = recheck_s
        self._open: dict[uuid.UUID, _Open] = {}

    async def _acquire(self, connector_id: uuid.UUID) -> _Open:
        """The open connector for ``connector_id``, its record read again when due (NotFound,
        KoppelhubError and the config's ValidationError pass through)."""
        now = time.monotonic()
        current = self._open.get(connector_id)
        if current is None or now - current.checked_at >= self.recheck_s:
            record = await self.connectors.get(connector_id)
            current = self._open.get(connector_id)  # another delivery may have opened it meanwhile
            if current is not None and current.record.updated_at == record.updated_at:
                current.checked_at = now
            else:
                context = self.context(record.organisatie, str(record.id))
                fresh = _Open(record, create(record.kind, record.config, context), now)
                if current is not None:
                    current.replaced = True
                    await self._close_if_idle(current)
                self._open[connector_id] = current = fresh
        current.users += 1
        return current

    async def _release(self, entry: _Open) -> None:
        entry.users -= 1
        await self._close_if_idle(entry)

    @staticmethod
    async def _close_if_idle(entry: _Open) -> None:
        if entry.replaced and entry.users == 0:
            await entry.connector.close()

    async def close(self) -> None:
        """Close every open connector (the process stops)."""
        for entry in self._open.values():
            await entry.connector.close()
        self._open.clear()

    def _outcome(self, started: float, disposition: Disposition, error: str | None = None) -> DeliveryOutcome:
        return DeliveryOutcome(
            disposition=disposition,
            status_code=None,
            error=error,
            duration_ms=(time.monotonic() - started) * 1000,
            response_excerpt=(error or "")[:512],
        )

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        started = time.monotonic()
        try:
            entry = await self._acquire(uuid.UUID(target.sink.removeprefix(SINK_PREFIX)))
        except (ValueError, NotFound):  # pydantic's ValidationError is a ValueError: a stored config gone bad
            return self._outcome(
                started, Disposition.PERMANENT, f"refused: no usable connector {target.sink!r}"
            )
        except KoppelhubError as e:
            return self._outcome(started, Disposition.RETRY, f"store_unavailable: {type(e).__name__}")
        try:
            return await self._apply(entry, event, started)
        finally:
            await self._release(entry)

    async def _apply(self, entry: _Open, event: Mapping[str, Any], started: float) -> DeliveryOutcome:
        record, connector = entry.record, entry.connector
        key = connector.writes(event)
        scope = SyncScope(
            import_source(self.hub_urn, "connector", str(record.id)), record.organisatie, str(record.id)
        )
        last: Fingerprint | None = None
        try:
            if key is not None and self.fingerprints is not None:
                last = (await self.fingerprints.known(scope, [key])).get(key)
            result = await connector.apply(event, seen=last.hash if last else None)
            # Done with the target: what is left is the hub's own (the fingerprint, the outcome
            # made durable), so the subscription's slot goes to the next request meanwhile.
            free_slot.get()()
            digest = connector.written(result[1]) if key is not None and result is not None else None
            removed = key is not None and result is not None and connector.removed(result[1])
            if key is not None and (digest is not None or removed) and self.fingerprints is not None:
                # What was written is what this connector read last: its next read is no change;
                # what was deleted is withdrawn for it: its next sweep does not withdraw it again.
                generation = last.generation + 1 if last is not None else 0
                await self.fingerprints.remember(scope, [Published(key[0], key[1], digest, generation)])
        except KoppelhubError as e:
            return self._outcome(started, Disposition.RETRY, f"store_unavailable: {type(e).__name__}")
        except SourceUnavailable as e:
            return self._outcome(started, Disposition.RETRY, f"unavailable: {e}")
        except (SourceRefused, NotImplementedError) as e:
            return self._outcome(started, Disposition.PERMANENT, f"refused: {e}")
        except ConnectorError as e:
            return self._outcome(started, Disposition.RETRY, f"error: {e}")
        if result is None:  # applied; the kind publishes no outcome event (the generic rest sink)
            return self._outcome(started, Disposition.DELIVERED)
        kind, data, refused = result
        source = getattr(connector.config, "source", None) or import_source(
            self.hub_urn, "connector", str(record.id)
        )
        subject = str(event.get("subject") or "")
        outcome = CloudEvent(
            specversion="1.0",
            # One id per request and outcome type: a repeated delivery's outcome is deduplicated.
            id=str(uuid.uuid5(NAMESPACE, f"{event.get('id')}\x1f{kind}")),
            source=source,
            type=kind,
            subject=subject or None,
            partitionkey=subject or None,
            datacontenttype="application/json",
            organisatie=record.organisatie,
            data=data,
        )
        try:
            await self.event_log.publish([outcome])
        except KoppelhubError as e:
            return self._outcome(started, Disposition.RETRY, f"outcome_unpublished: {type(e).__name__}")
        if refused:
            return self._outcome(started, Disposition.PERMANENT, f"refused: {data.get('reason')}")
        return self._outcome(started, Disposition.DELIVERED)


class ClientRouter:
    """The dispatcher's client: ``connector:`` sinks to :class:`ConnectorSink`, the rest to
    the webhook client."""

    def __init__(self, webhooks: Client, connectors: Client) -> None:
        self.webhooks, self.connectors = webhooks, connectors

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        chosen = self.connectors if target.sink.startswith(SINK_PREFIX) else self.webhooks
        return await chosen.deliver(target, event, msg_id, timeout_s=timeout_s)
