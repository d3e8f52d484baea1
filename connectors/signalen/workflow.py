"""Signalen's workflow: its state codes, its transition table, and a path planner over it.

The one copy of Signalen's rules in Koppelhub. ``ALLOWED_STATUS_CHANGES`` is taken from
Signalen's own code, ``Amsterdam/signals`` ``app/signals/apps/signals/workflow.py`` (checked
against commit 9ee486a1; ``DOMAIN.md`` §6 has the same table, entry for entry). Signalen's
documentation has an older matrix that disagrees with the code: the code is what Signalen
enforces (``Status.clean`` in ``app/signals/apps/signals/models/status.py`` answers a forbidden
transition with a 400 ``Invalid state transition from … to …``).

:func:`plan` turns a requested state into the PATCHes that reach it: one when Signalen allows
it directly, else the shortest path through the handling states only (``i``, ``b``,
``ingepland``, preferred in that order on ties), which neither e-mail the reporter nor close
the melding. It is pure; the write-back applies the steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from schemas.signalen import TEXT_REQUIRED as _TEXT_REQUIRED

__all__ = [
    "ALLOWED_STATUS_CHANGES",
    "CLOSED",
    "HANDLING",
    "REQUESTABLE",
    "STATE_DISPLAY",
    "TEXT_REQUIRED",
    "Plan",
    "Refusal",
    "plan",
]

LEEG: Final = ""
GEMELD: Final = "m"
AFWACHTING: Final = "i"
BEHANDELING: Final = "b"
ON_HOLD: Final = "h"
AFGEHANDELD: Final = "o"
GEANNULEERD: Final = "a"
GESPLITST: Final = "s"
HEROPEND: Final = "reopened"
VERZOEK_TOT_AFHANDELING: Final = "closure requested"
INGEPLAND: Final = "ingepland"
VERZOEK_TOT_HEROPENEN: Final = "reopen requested"
REACTIE_GEVRAAGD: Final = "reaction requested"
REACTIE_ONTVANGEN: Final = "reaction received"
DOORGEZET_NAAR_EXTERN: Final = "forward to external"
TE_VERZENDEN: Final = "ready to send"
VERZONDEN: Final = "sent"
VERZENDEN_MISLUKT: Final = "send failed"
AFGEHANDELD_EXTERN: Final = "done external"

#: Signalen's display names (``STATUS_CHOICES_API`` + ``STATUS_CHOICES_APP``).
STATE_DISPLAY: Final[Mapping[str, str]] = {
    GEMELD: "Gemeld",
    AFWACHTING: "In afwachting van behandeling",
    BEHANDELING: "In behandeling",
    ON_HOLD: "On hold",
    INGEPLAND: "Ingepland",
    TE_VERZENDEN: "Extern: te verzenden",
    AFGEHANDELD: "Afgehandeld",
    GEANNULEERD: "Geannuleerd",
    HEROPEND: "Heropend",
    GESPLITST: "Gesplitst",
    VERZOEK_TOT_AFHANDELING: "Extern: verzoek tot afhandeling",
    REACTIE_GEVRAAGD: "Reactie gevraagd",
    REACTIE_ONTVANGEN: "Reactie ontvangen",
    DOORGEZET_NAAR_EXTERN: "Doorgezet naar extern",
    VERZONDEN: "Extern: verzonden",
    VERZENDEN_MISLUKT: "Extern: mislukt",
    AFGEHANDELD_EXTERN: "Extern: afgehandeld",
    VERZOEK_TOT_HEROPENEN: "Verzoek tot heropenen",
}

# fmt: off
ALLOWED_STATUS_CHANGES: Final[Mapping[str, tuple[str, ...]]] = {
    LEEG: (GEMELD,),
    GEMELD: (GEMELD, AFWACHTING, BEHANDELING, TE_VERZENDEN, AFGEHANDELD, GEANNULEERD, INGEPLAND,
             REACTIE_GEVRAAGD, DOORGEZET_NAAR_EXTERN),
    AFWACHTING: (GEMELD, AFWACHTING, INGEPLAND, VERZOEK_TOT_AFHANDELING, AFGEHANDELD, TE_VERZENDEN,
                 BEHANDELING, GEANNULEERD, REACTIE_GEVRAAGD, DOORGEZET_NAAR_EXTERN),
    BEHANDELING: (GEMELD, INGEPLAND, BEHANDELING, AFGEHANDELD, GEANNULEERD, TE_VERZENDEN,
                  VERZOEK_TOT_AFHANDELING, REACTIE_GEVRAAGD, DOORGEZET_NAAR_EXTERN),
    INGEPLAND: (GEMELD, INGEPLAND, BEHANDELING, AFGEHANDELD, GEANNULEERD, VERZOEK_TOT_AFHANDELING,
                REACTIE_GEVRAAGD, DOORGEZET_NAAR_EXTERN),
    ON_HOLD: (INGEPLAND, GEANNULEERD),
    TE_VERZENDEN: (VERZONDEN, VERZENDEN_MISLUKT, GEANNULEERD),
    VERZONDEN: (AFGEHANDELD_EXTERN, AFGEHANDELD, GEANNULEERD),
    VERZENDEN_MISLUKT: (GEMELD, TE_VERZENDEN, GEANNULEERD),
    AFGEHANDELD_EXTERN: (AFGEHANDELD, GEANNULEERD, BEHANDELING),
    AFGEHANDELD: (HEROPEND, VERZOEK_TOT_HEROPENEN),
    GEANNULEERD: (GEANNULEERD, HEROPEND, BEHANDELING),
    HEROPEND: (HEROPEND, BEHANDELING, AFGEHANDELD, GEANNULEERD, TE_VERZENDEN, GEMELD, REACTIE_GEVRAAGD,
               DOORGEZET_NAAR_EXTERN),
    GESPLITST: (),
    VERZOEK_TOT_AFHANDELING: (GEMELD, VERZOEK_TOT_AFHANDELING, AFWACHTING, AFGEHANDELD, GEANNULEERD,
                              BEHANDELING, DOORGEZET_NAAR_EXTERN),
    VERZOEK_TOT_HEROPENEN: (AFGEHANDELD, HEROPEND, GEANNULEERD),
    REACTIE_GEVRAAGD: (GEMELD, AFWACHTING, BEHANDELING, INGEPLAND, AFGEHANDELD, GEANNULEERD,
                       REACTIE_GEVRAAGD, REACTIE_ONTVANGEN, TE_VERZENDEN, DOORGEZET_NAAR_EXTERN),
    REACTIE_ONTVANGEN: (GEMELD, AFWACHTING, BEHANDELING, AFGEHANDELD, GEANNULEERD, INGEPLAND,
                        REACTIE_GEVRAAGD, TE_VERZENDEN, DOORGEZET_NAAR_EXTERN),
    DOORGEZET_NAAR_EXTERN: (VERZOEK_TOT_AFHANDELING, GEMELD, AFWACHTING, BEHANDELING, DOORGEZET_NAAR_EXTERN,
                            INGEPLAND, AFGEHANDELD, GEANNULEERD, REACTIE_GEVRAAGD, REACTIE_ONTVANGEN,
                            TE_VERZENDEN),
}
# fmt: on

#: The handling states a path may pass through, in order of preference on ties.
HANDLING: Final = (AFWACHTING, BEHANDELING, INGEPLAND)
#: Closed: the hub never moves a melding out of these on a partner's request.
CLOSED: Final = frozenset({AFGEHANDELD, GEANNULEERD, GESPLITST})
#: Signalen refuses these without a ``text`` (``Status.clean``); owned by :mod:`schemas.signalen`,
#: which checks a status-verzoek at publish.
TEXT_REQUIRED: Final = _TEXT_REQUIRED
#: States a status-verzoek may ask for: the API's choices, less those that need fields a
#: status-verzoek does not carry (``target_api``, ``email_override``) and splitting (its own call).
REQUESTABLE: Final = frozenset(
    {GEMELD, AFWACHTING, BEHANDELING, ON_HOLD, INGEPLAND, AFGEHANDELD, GEANNULEERD, HEROPEND,
     VERZOEK_TOT_AFHANDELING, REACTIE_GEVRAAGD, REACTIE_ONTVANGEN}
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """The states to PATCH, in order; empty: the melding is already as requested."""

    steps: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Why the request is not carried out (Signalen is not called)."""

    reason: str


def _shortest(current: str, requested: str) -> tuple[str, ...] | None:
    """Breadth-first over the handling states; neighbours in preference order, first parent
    kept, so among the shortest paths the one preferring ``i``, then ``b``, then ``ingepland``
    at the earliest step wins."""
    parent: dict[str, str] = {}
    queue = deque([current])
    seen = {current}
    while queue:
        state = queue.popleft()
        allowed = ALLOWED_STATUS_CHANGES.get(state, ())
        if requested in allowed and state != current:
            path = [requested, state]
            while path[-1] != current:
                path.append(parent[path[-1]])
            return tuple(reversed(path[:-1]))
        for nxt in HANDLING:
            if nxt in allowed and nxt not in seen:
                seen.add(nxt)
                parent[nxt] = state
                queue.append(nxt)
    return None


def plan(
    current: str, requested: str, *, text: str | None, current_text: str | None = None
) -> Plan | Refusal:
    """The PATCHes that bring a melding from ``current`` to ``requested`` with ``text``.

    In order: a state no status-verzoek may ask for, or a missing text where Signalen needs
    one, is refused; a melding already in ``requested`` with the same text needs nothing
    (idempotent); a closed melding (``o``, ``a``, ``s``) is refused; an allowed transition is one
    step; otherwise the shortest path through the handling states, or a refusal when none
    reaches ``requested``.
    """
    show = STATE_DISPLAY.get
    if requested not in REQUESTABLE:
        return Refusal(f"state {requested!r} cannot be requested; one of {sorted(REQUESTABLE)}")
    if requested in TEXT_REQUIRED and not (text or "").strip():
        return Refusal(f"a text is required to set state {requested!r} ({show(requested)})")
    if current == requested and (current_text or "") == (text or ""):
        return Plan(())
    if current in CLOSED:
        return Refusal(f"the melding is closed ({current!r}, {show(current)}); it is not changed")
    if current not in ALLOWED_STATUS_CHANGES:
        return Refusal(f"the melding has state {current!r}, which Signalen's workflow does not know")
    if requested in ALLOWED_STATUS_CHANGES[current]:
        return Plan((requested,))
    path = _shortest(current, requested)
    if path is None:
        return Refusal(
            f"Signalen's workflow does not lead from {current!r} ({show(current)}) to {requested!r}"
            f" ({show(requested)}) through the handling states i, b, ingepland"
        )
    return Plan(path)
