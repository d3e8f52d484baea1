"""Driver errors translated at the adapter boundary (see hub.errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import psycopg
from sqlalchemy import exc

from hub.errors import PermanentError, RetriableError, StorageFull


class DatabaseUnavailable(RetriableError):
    """PostgreSQL could not be reached or dropped the connection."""


class DatabaseStorageFull(DatabaseUnavailable, StorageFull):
    """PostgreSQL could not extend a file or write its WAL: its disk is full."""


#: SQLSTATE ``disk_full``: PostgreSQL could not extend a table, index or temporary file.
DISK_FULL = "53100"


def _unavailable(error: BaseException, sqlstate: str | None) -> DatabaseUnavailable:
    """The retriable error for ``error``: :class:`DatabaseStorageFull` when the disk is full
    (SQLSTATE 53100, or "No space left on device" in a message that has no SQLSTATE, as a
    failed WAL write reports it), else :class:`DatabaseUnavailable`."""
    if sqlstate == DISK_FULL or "no space left on device" in str(error).lower():
        return DatabaseStorageFull(str(error))
    return DatabaseUnavailable(str(error))


class DataRejected(PermanentError):
    """PostgreSQL refused the data itself (encoding, constraint, type, size), or the adapter
    could not serialise it for PostgreSQL: retrying cannot help, the record is the problem."""


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn SQLAlchemy/psycopg errors into retriable or permanent hub errors.

    Permanent: SQLSTATE classes 22 (data exception, e.g. U+0000 in ``jsonb``), 23 (integrity)
    and 54 (program limit exceeded: a value too large for ``jsonb`` or for an index entry, a
    document nested too deep); and orjson refusing a value while the adapter serialises rows
    (an integer beyond 64 bits, a lone surrogate, nesting beyond 254 levels). Everything else
    from the driver is retriable; a full disk as :class:`DatabaseStorageFull`, so the API can
    tell the caller what to do."""
    try:
        yield
    except (exc.DataError, exc.IntegrityError) as e:
        # SQLSTATE classes 22 and 23: this data, not the database, is the problem.
        raise DataRejected(str(getattr(e, "orig", None) or e)) from e
    except orjson.JSONEncodeError as e:
        raise DataRejected(f"cannot serialise the data for PostgreSQL: {e}") from e
    except exc.DBAPIError as e:
        if str(getattr(e.orig, "sqlstate", None) or "").startswith("54"):
            # psycopg files class 54 under OperationalError, but it is about this statement's
            # data (a limit no amount of waiting raises), so retrying would jam the partition.
            raise DataRejected(str(e.orig)) from e
        # Outages, but also a missing migration or a revoked privilege: waiting and retrying
        # keeps the events; treating those as poison would dead-letter every valid event.
        raise _unavailable(e.orig or e, getattr(e.orig, "sqlstate", None)) from e
    except (exc.TimeoutError, exc.DisconnectionError) as e:
        raise DatabaseUnavailable(str(e)) from e
    except psycopg.Error as e:  # the driver's own calls (COPY), which SQLAlchemy does not wrap
        data_error = isinstance(e, psycopg.DataError | psycopg.IntegrityError)  # also client-side
        if data_error or (e.sqlstate or "")[:2] in ("22", "23", "54"):
            raise DataRejected(str(e)) from e
        raise _unavailable(e, e.sqlstate) from e
