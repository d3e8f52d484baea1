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
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError) as e:
        raise DatabaseUnavailable(str(e.__cause__ or e)) from e
    except (exc.DataError, exc.IntegrityError, exc.ProgrammingError, exc.InternalError) as e:
        raise DataRejected(str(getattr(e, "orig", None) or e)) from e
