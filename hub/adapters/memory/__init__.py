"""In-memory twins of the stores, for fast tests.

Each passes the same contract suite as its PostgreSQL adapter (``tests/contract/``), which is
what keeps them honest. :class:`InMemoryEventLog` is the twin of Kafka: the event log, the
dead-letter topic and the projector's :class:`hub.ports.LogConsumer`. The subscription, outbox
and delivery twins share one :class:`InMemoryDatabase`, as their PostgreSQL adapters share one
database; so do the connector, import and fingerprint twins (one :class:`InMemoryConnectorTables`).
"""

from hub.adapters.memory.connectors import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryFingerprintStore,
    InMemoryImportStore,
)
from hub.adapters.memory.database import InMemoryDatabase
from hub.adapters.memory.log import InMemoryEventLog, InMemoryLogConsumer
from hub.adapters.memory.members import InMemoryMemberRegistry
from hub.adapters.memory.outbox import InMemoryDeliveryStore, InMemoryOutbox
from hub.adapters.memory.projection import InMemoryProjectionStore
from hub.adapters.memory.runs import InMemoryRunStore
from hub.adapters.memory.subscriptions import InMemorySubscriptionStore
from hub.adapters.memory.tokens import InMemoryTokenStore

__all__ = [
    "InMemoryConnectorStore",
    "InMemoryConnectorTables",
    "InMemoryDatabase",
    "InMemoryDeliveryStore",
    "InMemoryEventLog",
    "InMemoryFingerprintStore",
    "InMemoryImportStore",
    "InMemoryLogConsumer",
    "InMemoryMemberRegistry",
    "InMemoryOutbox",
    "InMemoryProjectionStore",
    "InMemoryRunStore",
    "InMemorySubscriptionStore",
    "InMemoryTokenStore",
]
