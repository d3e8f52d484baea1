"""Which outbox NOTIFY wakes which dispatcher, where a process runs a projector beside one.

Each work process of ``koppelhub run`` runs a projector member and a dispatcher. The projector
NOTIFYs the outbox channel when its rows commit, and every dispatcher listened to every NOTIFY:
with two work processes both woke for each commit and raced for the same rows, and the loser's
claim found nothing and then ran ``CLAIM_HEADS`` too (issue 17: empty claims per event at
200 events/s went from 0.02-0.13 with one work process to 0.22-0.23 with two, work CPU per
event from 2.7-3.4 to 4.4-4.6 ms).

:class:`Beside` is the rule. A projector whose own dispatcher would claim now names its
process in the NOTIFY's payload (:meth:`Beside.payload`), and then only that dispatcher wakes
for it (:meth:`Beside.wakes`): every other one beside a projector of its own skips it. When its
dispatcher would not claim now (full, stopping, not started), the payload is empty and every
dispatcher wakes, as before. A dispatcher without a projector beside it (``koppelhub
dispatcher``, the roles run apart) has no rule and wakes for every NOTIFY, and so does every
dispatcher for the NOTIFYs of the API (a retry, a resume: empty payloads).

What this may cost, never more: a sibling's rows that its dispatcher cannot take after all (it
filled up between the payload and the commit) wait until that dispatcher has room again or
another dispatcher's next claim, at the latest its poll (``KOPPELHUB_DELIVERY_POLL_SECONDS``).
A wake-up is only a hint: any claim takes any due row, in per-key order (the claim SQL), so
which dispatcher claims a row never changes what is delivered or in which order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

#: The payload every dispatcher wakes for (the API's NOTIFYs, projectors without the rule).
EVERYONE = ""


class Beside:
    """The wake-up rule of one process that runs a projector and a dispatcher."""

    def __init__(self, claiming: Callable[[], bool] = lambda: False, writer: str | None = None) -> None:
        #: Names this process in its projector's NOTIFYs (unique per process, hosts included).
        self.writer = writer or uuid.uuid4().hex
        self._claiming = claiming

    def beside(self, claiming: Callable[[], bool]) -> None:
        """The dispatcher's "would claim now" (:attr:`hub.services.dispatcher.Dispatcher.claiming`),
        given once it exists (the projector is wired first)."""
        self._claiming = claiming

    def payload(self) -> str:
        """The NOTIFY payload of this process's projector: this process while its dispatcher
        would claim the rows at once, else :data:`EVERYONE`."""
        return self.writer if self._claiming() else EVERYONE

    def wakes(self, payload: str) -> bool:
        """Whether a NOTIFY with ``payload`` wakes this process's dispatcher: one of its own
        projector or one for everyone, not one whose writer's own dispatcher takes the rows."""
        return payload in (EVERYONE, self.writer)
