"""Driver errors translated at the adapter boundary (see hub.errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc

from hub.errors import PermanentError, RetriableError


class DatabaseUnavailable(RetriableError):
    """PostgreSQL could not be reached or dropped the connection."""


class DataRejected(PermanentError):
    """PostgreSQL refused the data itself (encoding, constraint, type)."""


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn SQLAlchemy/psycopg errors into retriable or permanent hub errors."""
    try:
        yield
    except (exc.DataError, exc.IntegrityError) as e:
        # SQLSTATE classes 22 and 23: this data, not the database, is the problem.
        raise DataRejected(str(getattr(e, "orig", None) or e)) from e
    except exc.DBAPIError as e:
        # Outages, but also a missing migration or a revoked privilege: waiting and retrying
        # keeps the events; treating those as poison would dead-letter every valid event.
        raise DatabaseUnavailable(str(e.orig or e)) from e
    except (exc.TimeoutError, exc.DisconnectionError) as e:
        raise DatabaseUnavailable(str(e)) from e
