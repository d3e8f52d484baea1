"""In-memory twins of the stores, for fast tests.

Each passes the same contract suite as its PostgreSQL adapter (``tests/contract/``), which is
what keeps them honest. The subscription, outbox and delivery twins share one
:class:`InMemoryDatabase`, as their PostgreSQL adapters share one database.
"""

from hub.adapters.memory.database import InMemoryDatabase
from hub.adapters.memory.outbox import InMemoryDeliveryStore, InMemoryOutbox
from hub.adapters.memory.projection import InMemoryProjectionStore
from hub.adapters.memory.subscriptions import InMemorySubscriptionStore

__all__ = [
    "InMemoryDatabase",
    "InMemoryDeliveryStore",
    "InMemoryOutbox",
    "InMemoryProjectionStore",
    "InMemorySubscriptionStore",
]
