"""Per subscription, at most its concurrency cap of delivery attempts sending at once.

The dispatcher holds up to twice a subscription's cap claimed (:func:`subscriptions.flow.claim_room`);
each claimed delivery enters the gate before its attempt and leaves it when the sink is done with
it, so the sink never has more than the cap in flight, and a claimed delivery starts the moment a
place is free instead of after the next claim. Places go in the order deliveries asked for them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque

__all__ = ["SendGate"]


class SendGate:
    """Places to send per subscription: :meth:`enter` waits for one, :meth:`leave` frees it."""

    def __init__(self) -> None:
        self._sending: dict[uuid.UUID, int] = {}
        self._caps: dict[uuid.UUID, int] = {}
        self._waiting: dict[uuid.UUID, deque[asyncio.Future[None]]] = {}
        #: Deliveries waiting for a place, all subscriptions together.
        self.waiting_total = 0

    def sending(self, subscription_id: uuid.UUID) -> int:
        return self._sending.get(subscription_id, 0)

    def waiting(self, subscription_id: uuid.UUID) -> int:
        return len(self._waiting.get(subscription_id, ()))

    async def enter(self, subscription_id: uuid.UUID, cap: int) -> None:
        """Wait for a place among ``cap`` (the subscription's cap as this delivery was claimed;
        the latest one given counts). Cancelled while waiting, it takes no place."""
        self._caps[subscription_id] = cap
        queue = self._waiting.get(subscription_id)
        if not queue and self.sending(subscription_id) < cap:
            self._sending[subscription_id] = self.sending(subscription_id) + 1
            return
        if queue is None:
            queue = self._waiting[subscription_id] = deque()
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(place)
        self.waiting_total += 1
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.leave(subscription_id)  # given a place as it was cancelled: hand it on
            raise
        finally:
            self.waiting_total -= 1

    def leave(self, subscription_id: uuid.UUID) -> None:
        """Free a place taken by :meth:`enter`; the longest waiting delivery gets it."""
        self._sending[subscription_id] = self.sending(subscription_id) - 1
        queue = self._waiting.get(subscription_id)
        cap = self._caps.get(subscription_id, 1)
        while queue and self._sending[subscription_id] < cap:
            place = queue.popleft()
            if not place.done():  # (a cancelled waiter's future is done)
                self._sending[subscription_id] += 1
                place.set_result(None)
        if not queue:
            self._waiting.pop(subscription_id, None)
            if self._sending[subscription_id] <= 0:
                del self._sending[subscription_id]
                self._caps.pop(subscription_id, None)
