"""The one way a connector makes HTTP requests (file downloads today, REST-style sources later).

Connectors never open network connections of their own choosing: the hub injects the
transport (``ConnectorContext.egress``, the SSRF-guarded one in ``hub/adapters/egress.py``,
which resolves each host once and connects only to an address the network policy allows).
Without one the request is refused (fail closed). Tests pass ``http_transport``
(``httpx.MockTransport``) instead. No redirects are followed, no proxy is taken from the
environment (a proxy would resolve the name itself, past the guard), the context's timeout.
"""

from __future__ import annotations

import httpx

from connectors.base import ConnectorContext, SourceRefused

__all__ = ["connector_client"]


def connector_client(ctx: ConnectorContext) -> httpx.AsyncClient:
    """An HTTP client for one connector run: ``ctx.http_transport`` (tests), else a transport
    from ``ctx.egress``; :class:`SourceRefused` when neither is configured."""
    transport = ctx.http_transport
    if transport is None:
        if ctx.egress is None:
            raise SourceRefused("no egress configured: this process may not make connector requests")
        transport = ctx.egress()
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, timeout=ctx.http_timeout_s, trust_env=False
    )
