"""The input of the exports: one organisation's landscape as landscape models."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.landscape import Applicatie, Gebruik, Koppeling, Referentiecomponent

__all__ = ["Landschap"]


@dataclass(frozen=True)
class Landschap:
    """What an organisation's landscape export shows.

    ``gebruik``: the organisation's usage rows (``afnemer`` = ``organisatie``);
    ``applicaties``: every applicatie those rows and the koppelingen reference (others are
    ignored; a reference to a missing applicatie is exported as a bare element named by its
    id); ``koppelingen``: the koppelingen the organisation runs; ``referentiecomponenten``:
    optional, gives names to the ids applicaties refer to.
    """

    organisatie: str
    gebruik: list[Gebruik] = field(default_factory=list)
    applicaties: list[Applicatie] = field(default_factory=list)
    koppelingen: list[Koppeling] = field(default_factory=list)
    referentiecomponenten: list[Referentiecomponent] = field(default_factory=list)
