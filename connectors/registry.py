"""Every connector kind by name; :func:`register` is how a kind joins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr

from connectors.base import Connector, ConnectorContext

__all__ = ["KINDS", "create", "public_config", "register", "secret_fields", "stored_config"]

KINDS: dict[str, type[Connector[Any]]] = {}
K = TypeVar("K", bound=type[Connector[Any]])


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


def public_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as the API shows it: secrets replaced by whether they are set."""
    hidden = secret_fields(KINDS[kind].config_model)
    return {k: ("********" if v else None) if k in hidden else v for k, v in config.items()}


def stored_config(model: BaseModel) -> dict[str, Any]:
    """A validated config as JSON, secrets in clear (the store keeps them; the API hides them)."""
    data = model.model_dump(mode="json")
    for name in secret_fields(type(model)):
        value = getattr(model, name)
        data[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return data
