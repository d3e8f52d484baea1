"""Subscriptions: filters, matching, signing, retry policy, flow control, delivery options,
SSRF guard and the sender.

Pure (pydantic + stdlib) except the HTTP side: :mod:`subscriptions.sender` (the guarded
client), :mod:`subscriptions.delivery` (content modes, signatures, handshake, sink auth on the
wire) and :mod:`subscriptions.egress` (mTLS contexts, OAuth2 tokens). Nothing here imports
``hub``, Kafka or SQLAlchemy.
"""

from subscriptions.filters import (
    DIALECTS,
    AllFilter,
    AnyFilter,
    ExactFilter,
    Filter,
    NotFilter,
    PrefixFilter,
    SuffixFilter,
    dump_filters,
    matches_all,
    normalize_attributes,
    parse_filters,
)
from subscriptions.model import (
    RESERVED_HEADERS,
    HttpProtocolSettings,
    SubscriptionCreate,
    SubscriptionStatus,
    subscription_matches,
    validate_sink,
)
from subscriptions.retry import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from subscriptions.sender import (
    BlockedAddressError,
    DeliveryOutcome,
    Disposition,
    GuardedResolver,
    WebhookSender,
    parse_retry_after,
)
from subscriptions.signing import generate_secret, sign, sign_many, webhook_headers
from subscriptions.ssrf import (
    NetworkPolicy,
    Resolver,
    SinkRefused,
    SinkUnresolvable,
    SystemResolver,
    check_sink,
    ip_literal,
)

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "DIALECTS",
    "RESERVED_HEADERS",
    "AllFilter",
    "AnyFilter",
    "BlockedAddressError",
    "DeliveryOutcome",
    "Disposition",
    "ExactFilter",
    "Filter",
    "GuardedResolver",
    "HttpProtocolSettings",
    "NetworkPolicy",
    "NotFilter",
    "PrefixFilter",
    "Resolver",
    "RetrySchedule",
    "SinkRefused",
    "SinkUnresolvable",
    "SubscriptionCreate",
    "SubscriptionStatus",
    "SuffixFilter",
    "SystemResolver",
    "WebhookSender",
    "check_sink",
    "dump_filters",
    "generate_secret",
    "ip_literal",
    "matches_all",
    "normalize_attributes",
    "parse_filters",
    "parse_retry_after",
    "sign",
    "sign_many",
    "subscription_matches",
    "validate_sink",
    "webhook_headers",
]
