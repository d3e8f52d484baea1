"""Write-back to any JSON API: the generic ``rest`` sink (issue 13 §2).

A ``rest`` connector with ``writeBack`` applies each hub event it consumes as one request to
its system: ``method`` to ``url`` (a template whose ``{…}`` placeholders are JMESPath
expressions over the event, e.g. ``{subject}`` or ``{data.zaak}``, each value percent-encoded
as one path or query segment) with ``body`` (each body field a JMESPath expression over the
event, e.g. ``{"status": "data.state", "verzoek": "id"}``; fields that come out null are left
out). The event is the structured CloudEvent (``id``, ``type``, ``subject``, ``data``, …).

The template's scheme and host are literal (a placeholder may come only after the first ``/``
of the path), so no event can send a request to another host; every request goes through the
connectors' egress guard (``KOPPELHUB_CONNECTORS_ALLOW_NETWORKS``) as the source side's do.

What an answer means for the delivery (the dispatcher's promises, as for Signalen):

- 2xx: applied, the delivery is delivered;
- 408, 429 and 5xx, network trouble: :class:`SourceUnavailable`, retried on the schedule;
- any other 4xx, and an event the template or body cannot be filled from:
  :class:`SourceRefused`, the delivery ends ``dead`` at once with the reason (the target's
  answer, shortened), since retrying cannot fix it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import Field, field_validator, model_validator

from connectors.base import SourceRefused
from connectors.http import ApiClient
from connectors.writeback import WriteBackConfig

__all__ = ["RestWriteBack", "apply"]

_EXCERPT = 300


def _placeholders(template: str) -> list[tuple[str, str | None]]:
    """``(literal text, expression or None)`` pairs; ``{{``/``}}`` are literal braces."""
    try:
        return [(literal, field) for literal, field, _, _ in string.Formatter().parse(template)]
    except ValueError as e:
        raise ValueError(f"not a URL template: {e}") from e


class RestWriteBack(WriteBackConfig):
    """Which events the connector applies (``types`` required: a REST API has no event types
    of its own) and the request each becomes."""

    method: Literal["POST", "PUT", "PATCH", "DELETE"] = Field("POST", description="The request's method.")
    url: str = Field(
        description="URL template: {…} holds a JMESPath over the event, e.g. "
        "https://zaken.example/api/zaken/{subject}/status; scheme and host are literal."
    )
    body: dict[str, str] | None = Field(
        None,
        description="JSON body: field → JMESPath over the event (null results left out); none for DELETE.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (a credential's value is write-only)."
    )

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        parts = _placeholders(value)
        first = next((i for i, (_, e) in enumerate(parts) if e is not None), None)
        fixed = "".join(lit for lit, _ in (parts if first is None else parts[: first + 1]))
        split = urlsplit(fixed)
        if split.scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL template")
        if first is not None and (not split.netloc or not split.path.startswith("/")):
            raise ValueError(
                "scheme and host must be literal: a placeholder may only follow the path's first /"
            )
        for _, expression in parts:
            if expression is None:
                continue
            try:
                jmespath.compile(expression)
            except JMESPathError as e:
                raise ValueError(f"{{{expression}}} is not a JMESPath expression: {e}") from e
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, path in (value or {}).items():
            try:
                jmespath.compile(path)
            except JMESPathError as e:
                raise ValueError(f"{name}: not a JMESPath expression: {e}") from e
        return value

    @model_validator(mode="after")
    def _complete(self) -> RestWriteBack:
        if not self.types:
            raise ValueError("types: name the event types this connector applies to its system")
        if self.method == "DELETE" and self.body:
            raise ValueError("body: a DELETE sends no body")
        return self

    @property
    def origin(self) -> str:
        """The target's scheme and host (literal in the template): what the API checks against
        the connectors' allow-list when the config is saved, as it does a source URL."""
        literal = "".join(lit for lit, _ in _placeholders(self.url)[:1])
        split = urlsplit(literal)
        return f"{split.scheme}://{split.netloc}/"

    @cached_property
    def compiled(self) -> tuple[list[tuple[str, ParsedResult | None]], dict[str, ParsedResult]]:
        url = [(lit, jmespath.compile(e) if e is not None else None) for lit, e in _placeholders(self.url)]
        return url, {name: jmespath.compile(path) for name, path in (self.body or {}).items()}


def target(config: RestWriteBack, event: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The URL and body for ``event``; :class:`SourceRefused` when the event lacks what the
    template needs (a request to a half-filled URL could change the wrong object)."""
    url_parts, body_paths = config.compiled
    url = ""
    for literal, expression in url_parts:
        url += literal
        if expression is None:
            continue
        value = expression.search(event)
        if value is None or value == "" or isinstance(value, (dict, list, bool)):
            raise SourceRefused(
                f"the event has no usable value for {{{expression.expression}}} in writeBack.url "
                f"(got {value!r}); the target URL cannot be filled"
            )
        url += quote(str(value), safe="")
    if config.method == "DELETE" or not body_paths:
        return url, None
    body = {name: path.search(event) for name, path in body_paths.items()}
    return url, {k: v for k, v in body.items() if v is not None}


async def apply(
    api: ApiClient, config: RestWriteBack, headers: Mapping[str, str], event: Mapping[str, Any]
) -> None:
    """Send ``event`` as its request; returns when the target accepted it (2xx)."""
    url, body = target(config, event)
    kwargs: dict[str, Any] = {"headers": {**headers, **config.headers}}
    if body is not None:
        kwargs["json"] = body
    response = await api.request(config.method, url, **kwargs)
    if 200 <= response.status_code < 300:
        return
    error = api.failed(response, "the target")
    if isinstance(error, SourceRefused):  # say why: the start of the target's own answer
        excerpt = response.text[:_EXCERPT].strip()
        raise SourceRefused(f"{error}: {excerpt}" if excerpt else str(error))
    raise error
