"""Which outbox NOTIFY wakes which dispatcher, where a process runs a projector beside one.

Each work process of ``koppelhub run`` runs a projector member and a dispatcher. The projector
NOTIFYs the outbox channel when its rows commit, and every dispatcher listened to every NOTIFY:
with two work processes both woke for each commit and raced for the same rows, and the loser's
claim found nothing and then ran ``CLAIM_HEADS`` too (issue 17: empty claims per event at
200 events/s went from 0.02-0.13 with one work process to 0.22-0.23 with two, work CPU per
event from 2.7-3.4 to 4.4-4.6 ms).

:class:`Beside` is the rule. A projector whose own dispatcher would claim now names its
process in the NOTIFY's payload (:meth:`Beside.payload`) and, once the rows are committed,
wakes that dispatcher itself, in the process (:meth:`Beside.committed`: no round trip through
PostgreSQL, so it claims before a sibling's claim could take the rows). Every dispatcher beside
a projector of its own skips a named NOTIFY (:func:`wakes`). When its dispatcher would
not claim now (full, stopping, not started), the payload is empty and every dispatcher wakes by
the NOTIFY, as before. A dispatcher without a projector beside it wakes for every NOTIFY,
named or not (``koppelhub dispatcher``, the roles run apart), except a **spare** one: a dispatch
child of ``run`` (``KOPPELHUB_DISPATCH_PROCESSES``, ``koppelhub worker --spare``). It skips the
named NOTIFYs, whose rows the named process claims at once, and wakes for the rest, which a work
process's projector sends exactly when its own dispatcher has no room (more than half its
concurrency sending: a backlog): at low rates it sleeps, under load it takes what the work
processes cannot. It claims no delivery of a subscription that limits its sink itself (``maxConcurrency``,
``maxRate``, ``WebHook-Allowed-Rate``: :meth:`subscriptions.flow.FlowControl.own_limits`),
since each dispatcher keeps those limits for itself and a sink would get them twice. Why a
spare dispatcher and not a second work process, with the figures: README "Roles and scaling".
Every dispatcher wakes for the NOTIFYs of the API (a retry, a resume: empty payloads).
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
        self._wake: Callable[[], None] = lambda: None

    def beside(self, claiming: Callable[[], bool], wake: Callable[[], None]) -> None:
        """The dispatcher's "would claim now" (:attr:`hub.services.dispatcher.Dispatcher.claiming`)
        and its wake-up, given once it exists (the projector is wired first)."""
        self._claiming, self._wake = claiming, wake

    def payload(self) -> str:
        """The NOTIFY payload of this process's projector: this process while its dispatcher
        would claim the rows at once, else :data:`EVERYONE`."""
        return self.writer if self._claiming() else EVERYONE

    def committed(self, payload: str) -> None:
        """Rows announced with ``payload`` are committed: wake this process's dispatcher when
        the NOTIFY named it (it skips that NOTIFY, :meth:`wakes`)."""
        if payload == self.writer:
            self._wake()


def wakes(payload: str) -> bool:
    """Whether a NOTIFY with ``payload`` wakes a dispatcher: only one for everyone. A named one
    wakes the named process's dispatcher in that process (:meth:`Beside.committed`); the others,
    a sibling work process's and every dispatch child, skip it."""
    return payload == EVERYONE
