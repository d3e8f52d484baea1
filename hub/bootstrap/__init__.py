"""Composition root: the one module that wires settings and adapters into services and roles.

:func:`wire` opens the adapters one process needs and builds the services of its roles (any
subset of ``api``, ``projector``, ``dispatcher``, ``connectors``); :class:`HubProcess` is that
wiring run by the :class:`~hub.supervisor.Supervisor`, which the CLI starts per command
(``koppelhub run`` asks for every role). Shutdown follows the order that loses nothing: stop
intake (the API and the connectors), drain the projector until everything accepted is in
PostgreSQL, let the dispatcher finish what it has in flight, then close the adapters. The
embedded services are stopped by the caller after that.

The CLI's other commands call the small functions here (:func:`migrate`, :func:`rebuild`,
:func:`import_runner`) rather than the adapters; :func:`connector_runner` is the one factory
of the connectors role's runner (the process, ``koppelhub import``, tests and benchmarks).
"""

from __future__ import annotations

from hub.adapters.tracing import RELAY_FD_ENV, span_relay
from hub.bootstrap.process import KAFKA_ROLES, ROLES, HubProcess, wire
from hub.bootstrap.tools import (
    admin_token,
    audit_trail,
    connector_contexts,
    connector_runner,
    create_topics,
    import_runner,
    migrate,
    observability,
    operator_tools,
    rebuild,
    token_service,
)
from hub.supervisor import QuietServer

__all__ = [
    "KAFKA_ROLES",
    "RELAY_FD_ENV",
    "ROLES",
    "HubProcess",
    "QuietServer",
    "admin_token",
    "audit_trail",
    "connector_contexts",
    "connector_runner",
    "create_topics",
    "import_runner",
    "migrate",
    "observability",
    "operator_tools",
    "rebuild",
    "span_relay",
    "token_service",
    "wire",
]
