"""CloudEvents envelope (NL GOV profile), protocol bindings and event data schemas.

Depends on pydantic and the standard library only.
"""

from schemas.bindings import (
    DATA_HINT_HEADER,
    EXTTYPES_HEADER,
    KafkaRecord,
    from_kafka_record,
    parse_batch,
    parse_binary,
    parse_structured,
    to_kafka_record,
)
from schemas.envelope import (
    DEFAULT_MAX_EVENT_BYTES,
    CloudEvent,
    EnvelopeError,
    EventTooLarge,
    Problem,
    is_json_content_type,
    validate_event,
)

__all__ = [
    "DATA_HINT_HEADER",
    "DEFAULT_MAX_EVENT_BYTES",
    "EXTTYPES_HEADER",
    "CloudEvent",
    "EnvelopeError",
    "EventTooLarge",
    "KafkaRecord",
    "Problem",
    "from_kafka_record",
    "is_json_content_type",
    "parse_batch",
    "parse_binary",
    "parse_structured",
    "to_kafka_record",
    "validate_event",
]
