"""The landscape: Softwarecatalogus objects carried as CloudEvents (issue 3).

:mod:`schemas.landscape.models` holds one pydantic model per object type;
:mod:`schemas.landscape.events` the event type names, the validation the publish API
runs on their data, and the field diff for ``gewijzigd`` events.
"""

from schemas.landscape.events import (
    DERIVED_VERBS,
    INBOUND_VERBS,
    SEQUENCE_WIDTH,
    TYPE_PREFIX,
    FieldChange,
    LandscapeDataError,
    aangemaakt_type,
    changed_fields,
    check_subject,
    event_type,
    gewijzigd_type,
    ingetrokken_type,
    parse_derived_type,
    parse_inbound_type,
    sequence_warning,
    unknown_type_problem,
    validate_landscape_data,
    validate_landscape_event,
    vastgelegd_type,
    verwijderd_type,
)
from schemas.landscape.models import (
    OBJECT_TYPES,
    PRIVATE_FIELDS,
    Applicatie,
    Gebruik,
    Ingetrokken,
    Koppeling,
    LandscapeObject,
    Organisatie,
    Referentiecomponent,
    Standaard,
)

__all__ = [
    "DERIVED_VERBS",
    "INBOUND_VERBS",
    "OBJECT_TYPES",
    "PRIVATE_FIELDS",
    "SEQUENCE_WIDTH",
    "TYPE_PREFIX",
    "Applicatie",
    "FieldChange",
    "Gebruik",
    "Ingetrokken",
    "Koppeling",
    "LandscapeDataError",
    "LandscapeObject",
    "Organisatie",
    "Referentiecomponent",
    "Standaard",
    "aangemaakt_type",
    "changed_fields",
    "check_subject",
    "event_type",
    "gewijzigd_type",
    "ingetrokken_type",
    "parse_derived_type",
    "parse_inbound_type",
    "sequence_warning",
    "unknown_type_problem",
    "validate_landscape_data",
    "validate_landscape_event",
    "vastgelegd_type",
    "verwijderd_type",
]
