"""The metrics port: what the services count and time, whatever exposes it (Prometheus).

Services call these methods and never see a metrics library; :data:`NO_METRICS` is the
default where nothing is wired (tests, the CLI's one-off commands)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol


class Metrics(Protocol):
    def published(self, mode: str, count: int) -> None:
        """``count`` events accepted by the log through publish mode ``mode``
        (``structured``, ``batch``, ``binary``)."""
        ...

    def projected(self, count: int, seconds: float) -> None:
        """One projector batch: ``count`` events seen for the first time, in ``seconds``."""
        ...

    def dead_lettered(self) -> None:
        """One record parked in the dead-letter topic."""
        ...

    def read_again(self) -> None:
        """A projector member reads its uncommitted batches again: the database went through
        crash recovery (or a failover) since it read them, and their asynchronous commits may
        be lost. A clean restart loses nothing and does not count."""
        ...

    def publish_warned(self, kind: str, count: int) -> None:
        """``count`` events accepted with a warning of ``kind`` (e.g. ``sequence-not-padded``):
        mistakes the publish API answers with a warning rather than a refusal."""
        ...

    def attempts_recorded(
        self, outcomes: Mapping[str, int], seconds: Iterable[float], delivered_after: Iterable[float] = ()
    ) -> None:
        """Delivery attempts whose outcomes were just recorded, together: how many made the
        delivery each outcome (delivered, failed, dead), the time each attempt took, and for
        each delivered one how long after the log accepted its event (end to end: publish,
        projection, queueing, retries and the attempt; none when that time is unknown). Given
        per recording round rather than per attempt, so a counter or histogram moves once per
        round (a few shared-memory writes in multiprocess mode) instead of once per attempt."""
        ...

    def connector_run(self, kind: str, outcome: str) -> None:
        """One connector run ended (``ok`` or ``error``)."""
        ...

    def observed(self, lag: Mapping[int, int], outbox_pending: int) -> None:
        """The projector's lag per partition and the open outbox, as last read."""
        ...


class ExposedMetrics(Metrics, Protocol):
    def exposition(self) -> tuple[bytes, str]:
        """The metrics in a scraper's format, and its content type."""
        ...


class NoMetrics:
    def published(self, mode: str, count: int) -> None:
        pass

    def projected(self, count: int, seconds: float) -> None:
        pass

    def dead_lettered(self) -> None:
        pass

    def read_again(self) -> None:
        pass

    def publish_warned(self, kind: str, count: int) -> None:
        pass

    def attempts_recorded(
        self, outcomes: Mapping[str, int], seconds: Iterable[float], delivered_after: Iterable[float] = ()
    ) -> None:
        pass

    def connector_run(self, kind: str, outcome: str) -> None:
        pass

    def observed(self, lag: Mapping[int, int], outbox_pending: int) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()
