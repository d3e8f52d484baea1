"""Every connector kind by name; :func:`register` is how a kind joins.

Secret config fields are ``SecretStr``, at any depth (``auth.token``): stored in clear, shown
as ``"********"``, and kept when a change sends them back masked or leaves them out. A password
inside a URL (``auth.proxy``, e.g. an FSC outway's ``http://user:pass@outway:8080``) is a secret
too: shown as ``***`` (``http://user:***@outway:8080``), and kept when a change sends the URL
back as shown; and so is the value of a credential header (``Authorization``, an API key, …) in
a field named ``headers``, shown as ``"********"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, SecretStr

from connectors.base import Connector, ConnectorContext
from schemas.credentials import is_credential_header, kept_headers, moved_secrets, redact_url, shown_headers

__all__ = [
    "KINDS",
    "MASK",
    "create",
    "merge_config",
    "moved_config_secrets",
    "public_config",
    "register",
    "secret_fields",
    "stored_config",
]

KINDS: dict[str, type[Connector[Any]]] = {}
K = TypeVar("K", bound=type[Connector[Any]])
MASK = "********"
#: A config field of extra request headers (``rest``: ``headers``, ``writeBack.headers``).
HEADERS = "headers"


def register(kind: K) -> K:
    """Class decorator: make ``kind`` available under ``kind.name``."""
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"connector kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def create(kind: str, config: Mapping[str, Any], context: ConnectorContext) -> Connector[Any]:
    """A connector of ``kind``; pydantic's ValidationError when ``config`` is invalid."""
    cls = KINDS[kind]
    return cls(cls.config_model.model_validate(config), context)


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """Config fields that are write-only (``SecretStr``): stored, never shown."""
    return frozenset(name for name, info in model.model_fields.items() if "SecretStr" in str(info.annotation))


def _nested(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Fields whose value is (optionally) another config model, e.g. ``auth``."""
    found: dict[str, type[BaseModel]] = {}
    for name, info in model.model_fields.items():
        for candidate in (info.annotation, *get_args(info.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found[name] = candidate
    return found


def _public(model: type[BaseModel], config: Mapping[str, Any]) -> dict[str, Any]:
    hidden, nested = secret_fields(model), _nested(model)
    shown: dict[str, Any] = {}
    for key, value in config.items():
        if key in hidden:
            shown[key] = MASK if value else None
        elif key in nested and isinstance(value, Mapping):
            shown[key] = _public(nested[key], value)
        elif key == HEADERS and isinstance(value, Mapping):
            shown[key] = shown_headers(value, MASK)
        else:
            shown[key] = _shown(value)
    return shown


def _shown(value: Any) -> Any:
    """``value`` as the API shows it: a URL's password masked (also in a list of them, as
    publiccode's ``urls``), anything else as it is."""
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if not isinstance(value, str) or "@" not in value:
        return value
    try:
        return redact_url(value)
    except ValueError:  # not a URL that can be taken apart (a bad port): hide all of it
        return MASK


def public_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as the API shows it: secrets replaced by whether they are set."""
    return _public(KINDS[kind].config_model, config)


def stored_config(model: BaseModel) -> dict[str, Any]:
    """A validated config as JSON, secrets in clear (the store keeps them; the API hides them)."""
    data = model.model_dump(mode="json")
    for name in secret_fields(type(model)):
        value = getattr(model, name)
        data[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    for name in _nested(type(model)):
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            data[name] = stored_config(value)
    return data


def _merge(model: type[BaseModel], stored: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    hidden, nested = secret_fields(model), _nested(model)
    merged = dict(stored)
    for key, value in change.items():
        if key in hidden and value == MASK:
            continue  # sent back as shown: keep the stored secret
        if key not in hidden and value != stored.get(key) and value == _shown(stored.get(key)):
            continue  # a URL sent back as shown, its password masked: keep the stored one
        if isinstance(value, list) and isinstance(stored.get(key), list):
            # URLs sent back as shown among new ones: each keeps its stored password.
            before = {_shown(item): item for item in stored[key] if isinstance(item, str)}
            merged[key] = [before.get(item, item) if isinstance(item, str) else item for item in value]
            continue
        if key == HEADERS and isinstance(value, Mapping) and isinstance(stored.get(key), Mapping):
            merged[key] = kept_headers(value, stored[key], MASK)
            continue
        if key in nested and isinstance(value, Mapping) and isinstance(stored.get(key), Mapping):
            merged[key] = _merge(nested[key], stored[key], value)
        else:
            merged[key] = value
    return merged


def merge_config(kind: str, stored: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH's config over the stored one: nested objects merged, masked secrets kept."""
    return _merge(KINDS[kind].config_model, stored, change)


def _secrets(model: type[BaseModel], config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every secret in ``config`` by its dotted path: ``SecretStr`` fields and credential headers
    (a URL's password goes only to that URL's own host, so it is not among them)."""
    hidden, nested = secret_fields(model), _nested(model)
    found: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if key in hidden and value:
            found[path] = value
        elif key in nested and isinstance(value, Mapping):
            found |= _secrets(nested[key], value, f"{path}.")
        elif key == HEADERS and isinstance(value, Mapping):
            # by lower-case name, as kept_headers matches a header sent back masked
            found |= {f"{path}.{name.lower()}": v for name, v in value.items() if is_credential_header(name)}
    return found


def moved_config_secrets(
    kind: str, stored: Mapping[str, Any], change: Mapping[str, Any], merged: Mapping[str, Any]
) -> str | None:
    """Why a PATCH's ``merged`` config (validated) may not keep stored secrets the ``change``
    did not give again, or ``None`` (``schemas.credentials.moved_secrets``)."""
    model = KINDS[kind].config_model
    before, given = _secrets(model, stored), _secrets(model, change)
    after = _secrets(model, merged)
    kept = sorted(path for path, value in after.items() if before.get(path) == value != given.get(path))
    return moved_secrets(kept, stored, merged)
