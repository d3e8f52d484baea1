"""The hub's error hierarchy, grouped by what the caller should do about it.

- :class:`RetriableError`: try again later (broker or database unreachable, timeouts);
- :class:`PermanentError`: the input is wrong and will stay wrong (poison event, bad request);
- :class:`ConfigurationError`: the process cannot run as configured; fix settings and restart.

Adapters translate driver exceptions (aiokafka, psycopg, SQLAlchemy) into these with
``raise … from e`` so services never see a driver type.
"""

from __future__ import annotations


class KoppelhubError(Exception):
    """Root of every error the hub raises on purpose."""


class RetriableError(KoppelhubError):
    """A transient failure: the same call may succeed later."""


class PermanentError(KoppelhubError):
    """The input cannot be handled, now or later."""


class ConfigurationError(KoppelhubError):
    """The process is configured in a way it cannot run with."""


class StorageFull(RetriableError):
    """The disk under the database is full (PostgreSQL's ``disk_full``, SQLSTATE 53100, or
    ENOSPC): nothing of the failed call was kept; it can succeed once an operator frees space."""


class BrokerUnavailable(RetriableError):
    """Kafka did not acknowledge in time or could not be reached."""


class RecordTooLarge(PermanentError):
    """A log record is larger than any event this hub accepts; it is parked before it is decoded."""


class NotFound(PermanentError):
    """A resource that was asked for does not exist."""
