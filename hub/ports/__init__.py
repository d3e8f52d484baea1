"""Ports: every protocol the services and the API depend on, with the records they carry.

By concern: :mod:`.log` (the event log), :mod:`.landscape` (landscape tables and the read
API, with the filter table both adapters interpret), :mod:`.projection` (one projector
transaction), :mod:`.subscriptions`, :mod:`.delivery` (outbox, deliveries, retention) and
:mod:`.connectors` (connectors, imports, fingerprints). Adapters (``hub/adapters``) implement
them; only ``hub/bootstrap/`` wires adapters to services. Everything is re-exported here.
"""

from __future__ import annotations

from hub.ports.connectors import (
    BatchCommit,
    ConnectorRecord,
    ConnectorStore,
    Fingerprint,
    FingerprintStore,
    ImportRecord,
    ImportStore,
    Key,
    Owner,
    Published,
    RowError,
    RunRecord,
    RunStore,
    SyncScope,
)
from hub.ports.delivery import (
    AttemptResult,
    ClaimedDelivery,
    DeliveryStore,
    Outbox,
    PulledPage,
    Removed,
    Retention,
)
from hub.ports.landscape import (
    COLLECTIONS,
    LIST_FILTERS,
    LandscapeReader,
    LandscapeSnapshot,
    LandscapeUnitOfWork,
    LandscapeWrite,
    Landschap,
    ObjectKey,
    Provenance,
    StoredObject,
    UnknownFilter,
    Watermark,
    check_filters,
)
from hub.ports.log import (
    EventLog,
    LogConsumer,
    LoggedEvent,
    LogRecord,
    RecordLog,
    max_record_bytes,
)
from hub.ports.projection import (
    ArchivedEvent,
    DeadLetters,
    MatchableSubscription,
    NewDelivery,
    ProjectionStore,
    ProjectionUnitOfWork,
    Rebuild,
    RebuildableStore,
)
from hub.ports.subscriptions import (
    SUBSCRIPTION_FILTERS,
    SigningTarget,
    SubscriptionDetails,
    SubscriptionFilter,
    SubscriptionRecord,
    SubscriptionStore,
)

__all__ = [
    "COLLECTIONS",
    "LIST_FILTERS",
    "SUBSCRIPTION_FILTERS",
    "ArchivedEvent",
    "AttemptResult",
    "BatchCommit",
    "ClaimedDelivery",
    "ConnectorRecord",
    "ConnectorStore",
    "DeadLetters",
    "DeliveryStore",
    "EventLog",
    "Fingerprint",
    "FingerprintStore",
    "ImportRecord",
    "ImportStore",
    "Key",
    "LandscapeReader",
    "LandscapeSnapshot",
    "LandscapeUnitOfWork",
    "LandscapeWrite",
    "Landschap",
    "LogConsumer",
    "LogRecord",
    "LoggedEvent",
    "MatchableSubscription",
    "NewDelivery",
    "ObjectKey",
    "Outbox",
    "Owner",
    "ProjectionStore",
    "ProjectionUnitOfWork",
    "Provenance",
    "Published",
    "PulledPage",
    "Rebuild",
    "RebuildableStore",
    "RecordLog",
    "Removed",
    "Retention",
    "RowError",
    "RunRecord",
    "RunStore",
    "SigningTarget",
    "StoredObject",
    "SubscriptionDetails",
    "SubscriptionFilter",
    "SubscriptionRecord",
    "SubscriptionStore",
    "SyncScope",
    "UnknownFilter",
    "Watermark",
    "check_filters",
    "max_record_bytes",
]
