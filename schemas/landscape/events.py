"""Landscape event types, validation of their data, and the diff for ``gewijzigd``.

Inbound (published by sources): ``nl.softwarecatalogus.<objecttype>.vastgelegd.v1``
(``data`` = the whole object, ``subject`` = its id) and ``….ingetrokken.v1`` (``data`` =
``{"id": …}``). Derived (emitted by the projector): ``….aangemaakt.v1``,
``….gewijzigd.v1``, ``….verwijderd.v1``. The ``nl.softwarecatalogus.`` namespace belongs
to the landscape: any other type in it is refused (:func:`unknown_type_problem`); types
outside it pass through untouched.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypedDict, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from schemas.envelope import CloudEvent, Problem
from schemas.landscape.models import (
    OBJECT_TYPES,
    PATTERN_MESSAGES,
    GebruikVoorstel,
    Ingetrokken,
    Koppeling,
    LandscapeObject,
    _show,
    koppeling_side_b_problem,
)

__all__ = [
    "DERIVED_VERBS",
    "INBOUND_VERBS",
    "SEQUENCE_WIDTH",
    "TYPE_PREFIX",
    "VOORGESTELD_TYPE",
    "FieldChange",
    "LandscapeDataError",
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
    "validate_proposal_data",
    "vastgelegd_type",
    "verwijderd_type",
]

TYPE_PREFIX: Final = "nl.softwarecatalogus."
INBOUND_VERBS: Final = ("vastgelegd", "ingetrokken")
DERIVED_VERBS: Final = ("aangemaakt", "gewijzigd", "verwijderd")


def event_type(objecttype: str, verb: str) -> str:
    """``nl.softwarecatalogus.<objecttype>.<verb>.v1``; ValueError for an unknown name."""
    if objecttype not in OBJECT_TYPES:
        raise ValueError(f"unknown landscape object type {objecttype!r}")
    if verb not in INBOUND_VERBS and verb not in DERIVED_VERBS:
        raise ValueError(f"unknown landscape event verb {verb!r}")
    return f"{TYPE_PREFIX}{objecttype}.{verb}.v1"


def vastgelegd_type(objecttype: str) -> str:
    return event_type(objecttype, "vastgelegd")


def ingetrokken_type(objecttype: str) -> str:
    return event_type(objecttype, "ingetrokken")


def aangemaakt_type(objecttype: str) -> str:
    return event_type(objecttype, "aangemaakt")


def gewijzigd_type(objecttype: str) -> str:
    return event_type(objecttype, "gewijzigd")


def verwijderd_type(objecttype: str) -> str:
    return event_type(objecttype, "verwijderd")


_INBOUND = {event_type(t, v): (t, v) for t in OBJECT_TYPES for v in INBOUND_VERBS}
_DERIVED = {event_type(t, v): (t, v) for t in OBJECT_TYPES for v in DERIVED_VERBS}


def parse_inbound_type(event_type: str) -> tuple[str, str] | None:
    """``(objecttype, "vastgelegd" | "ingetrokken")`` for an inbound landscape type, else None."""
    return _INBOUND.get(event_type)


def parse_derived_type(event_type: str) -> tuple[str, str] | None:
    """``(objecttype, "aangemaakt" | "gewijzigd" | "verwijderd")`` for a derived type, else None."""
    return _DERIVED.get(event_type)


#: A gebruik *proposal* (:class:`~schemas.landscape.models.GebruikVoorstel`): validated at
#: publish, delivered to subscribers, never projected (it is not a landscape object's state).
VOORGESTELD_TYPE: Final = f"{TYPE_PREFIX}gebruik.voorgesteld.v1"

#: Types in the landscape's namespace that are not about a landscape object's state.
OTHER_TYPES: frozenset[str] = frozenset({VOORGESTELD_TYPE})


def unknown_type_problem(event_type: str) -> str | None:
    """Why ``event_type`` is refused, when it claims the ``nl.softwarecatalogus.`` namespace but
    names no type that exists there (a typo would otherwise be accepted and never projected);
    None for a known type and for every type outside the namespace."""
    if not event_type.startswith(TYPE_PREFIX) or event_type in _INBOUND or event_type in _DERIVED:
        return None
    if event_type in OTHER_TYPES:
        return None
    parts = event_type[len(TYPE_PREFIX) :].split(".")
    objecttype, verb = ([*parts, "", ""])[:2]
    if objecttype not in OBJECT_TYPES:
        close = difflib.get_close_matches(objecttype, list(OBJECT_TYPES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        why = f"{objecttype!r} is not a landscape object type; {hint}object types are " + ", ".join(
            map(repr, OBJECT_TYPES)
        )
    elif verb not in INBOUND_VERBS and verb not in DERIVED_VERBS:
        why = f"{verb!r} is not a landscape event verb; sources publish " + " or ".join(
            repr(v) for v in INBOUND_VERBS
        )
    else:
        why = "the only version is v1"
    publishable = ", ".join(sorted({*_INBOUND, *OTHER_TYPES}))
    return (
        f"is not a type in the {TYPE_PREFIX!r} namespace, which belongs to the landscape: {why}. "
        f"Types a source may publish: {publishable}"
    )


#: The width a numeric ``sequence`` is zero-padded to (room for any 64-bit counter).
SEQUENCE_WIDTH: Final = 20


def sequence_warning(sequence: str | None) -> str | None:
    """A warning for a numeric ``sequence`` that is not zero-padded, else None.

    Sequences compare as strings (NL GOV CloudEvents), so ``"10"`` sorts before ``"9"`` and an
    unpadded counter makes newer events look stale. Whether ``"0042"`` is padded to the width
    this source used before would need per-source state at publish; what a stateless check can
    see is digits without a leading zero and shorter than :data:`SEQUENCE_WIDTH` (a counter
    that was never padded), which is what it reports. A warning, not a refusal: a source whose
    counter never passes one digit, or that pads to a width of its own, loses nothing.
    """
    if sequence is None or not sequence.isdigit() or not sequence.isascii():
        return None
    if len(sequence) >= SEQUENCE_WIDTH or (sequence.startswith("0") and len(sequence) > 1):
        return None
    padded = sequence.zfill(SEQUENCE_WIDTH)
    return (
        f"sequence {sequence!r} is not zero-padded: sequences compare as strings, so '10' sorts "
        f"before '9' and a later event looks stale; send {padded!r} (always the same width)"
    )


# -- validation -------------------------------------------------------------------------


class LandscapeDataError(ValueError):
    """Landscape event data is invalid; ``problems`` are ``(field, message)`` pairs with
    fields relative to the event, e.g. ``("data.status", "must be one of …")``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))

    def to_problems(self, index: int | None = None) -> list[Problem]:
        """The problems as envelope :class:`Problem` rows (``index`` = batch position)."""
        return [Problem(index, field, message) for field, message in self.problems]


def _kind(value: Any) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}
    return "null" if value is None else names.get(type(value), "an object")


def _allowed(model: type[BaseModel], field: str) -> tuple[str, ...]:
    """The values of a ``Literal[...]`` (or ``Literal[...] | None``) field."""
    info = model.model_fields.get(field)
    args = get_args(info.annotation) if info else ()
    literal = next((get_args(a) for a in args if get_args(a)), args)
    return tuple(a for a in literal if isinstance(a, str))


def _message(err: ErrorDetails, field: str, model: type[BaseModel], what: str) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "landscape":
        return str(ctx["reason"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, list(model.model_fields), n=1)
        fields = ", ".join(map(repr, model.model_fields))
        return f"is not a field of {what}; " + (
            f"did you mean {close[0]!r}?" if close else f"allowed: {fields}"
        )
    if kind == "literal_error":
        values = _allowed(model, field)
        quoted = [repr(v) for v in values]
        one_of = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else ctx.get("expected")
        same = [v for v in values if isinstance(value, str) and v.casefold() == value.casefold()]
        hint = f"; values are case-sensitive: did you mean {same[0]!r}?" if same else ""
        return f"must be one of {one_of} (got {_show(value)}{hint})"
    if kind == "string_type":
        return f"must be a string, not {_kind(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"{PATTERN_MESSAGES.get(str(ctx.get('pattern')), 'has the wrong format')} (got {_show(value)})"
    if kind == "list_type":
        return f"must be a list of ids, not {_kind(value)}"
    return err["msg"]  # not reachable from JSON input; pydantic's own wording


def _translate(exc: ValidationError, model: type[BaseModel], what: str) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        # A model-level check names its field in ctx; everything else in loc.
        loc = err["loc"] or (str((err.get("ctx") or {}).get("field") or ""),)
        path = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p != "")
        problems.append((path, _message(err, str(loc[0]), model, what)))
    return problems


def validate_landscape_data(event_type: str, data: Any) -> LandscapeObject | Ingetrokken | None:
    """Validate the ``data`` of a landscape event; None for any other event type.

    Returns the object (``vastgelegd``) or an :class:`Ingetrokken`; raises
    :class:`LandscapeDataError` listing every problem found.
    """
    parsed = parse_inbound_type(event_type)
    if parsed is None:
        return None
    objecttype, verb = parsed
    model: type[LandscapeObject | Ingetrokken] = OBJECT_TYPES[objecttype]
    what = objecttype
    if verb == "ingetrokken":
        model, what = Ingetrokken, "ingetrokken data"
    if not isinstance(data, Mapping):
        shape = f"{objecttype} object" if model is not Ingetrokken else 'object {"id": …}'
        raise LandscapeDataError([("data", f"must be a JSON {shape}, not {_kind(data)}")])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = _translate(e, model, what)
        # The koppeling rule runs only once every field is valid: report it with the rest.
        side_b = koppeling_side_b_problem(data) if model is Koppeling else None
        if side_b and f"data.{side_b[0]}" not in {field for field, _ in problems}:
            problems.append((f"data.{side_b[0]}", side_b[1]))
        raise LandscapeDataError(problems) from e


def validate_proposal_data(event_type: str, data: Any) -> GebruikVoorstel | None:
    """Validate the ``data`` of a gebruik proposal (:data:`VOORGESTELD_TYPE`); None for any
    other type. Raises :class:`LandscapeDataError` listing every problem found."""
    if event_type != VOORGESTELD_TYPE:
        return None
    if not isinstance(data, Mapping):
        raise LandscapeDataError(
            [("data", f'must be a JSON object {{"afnemer", "applicatie", …}}, not {_kind(data)}')]
        )
    try:
        return GebruikVoorstel.model_validate(data)
    except ValidationError as e:
        raise LandscapeDataError(_translate(e, GebruikVoorstel, "a gebruik proposal")) from e


def _subject_problem(subject: str | None, object_id: str) -> tuple[str, str] | None:
    if subject is None:
        return ("subject", f"is required for a landscape event: set it to data.id ({object_id!r})")
    if subject != object_id:
        return ("subject", f"must equal data.id, {object_id!r} (got {_show(subject)})")
    return None


def check_subject(subject: str | None, model: LandscapeObject | Ingetrokken) -> tuple[str, str] | None:
    """The problem when ``subject`` is absent or not ``model.id``, else None.

    Applies to both inbound verbs: ``subject`` is the partition key, which keeps the
    events of one object in order.
    """
    return _subject_problem(subject, model.id)


def validate_landscape_event(event: CloudEvent) -> LandscapeObject | Ingetrokken | None:
    """:func:`validate_landscape_data` plus :func:`check_subject`, every problem at once.

    A gebruik proposal is validated too (:func:`validate_proposal_data`) and yields None: it
    is not a landscape object, and its ``subject`` is free."""
    if validate_proposal_data(event.type, event.data) is not None:
        return None
    try:
        model = validate_landscape_data(event.type, event.data)
    except LandscapeDataError as e:
        data_id = event.data.get("id") if isinstance(event.data, Mapping) else None
        subject = _subject_problem(event.subject, data_id) if isinstance(data_id, str) else None
        if subject is None:
            raise
        raise LandscapeDataError([*e.problems, subject]) from e
    problem = check_subject(event.subject, model) if model is not None else None
    if problem:
        raise LandscapeDataError([problem])
    return model


# -- changes ----------------------------------------------------------------------------


class FieldChange(TypedDict):
    """One changed field of a ``gewijzigd`` event."""

    field: str
    old: Any
    new: Any


def changed_fields(
    old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str]
) -> list[FieldChange]:
    """The fields whose values differ, sorted by name; an absent key counts as None.

    Pass canonical dumps (``model_dump(mode="json")``) and ``ignore`` =
    ``PRIVATE_FIELDS[objecttype]`` so private fields never show up.
    """
    skip = frozenset(ignore)
    return [
        FieldChange(field=name, old=old.get(name), new=new.get(name))
        for name in sorted(old.keys() | new.keys())
        if name not in skip and old.get(name) != new.get(name)
    ]
