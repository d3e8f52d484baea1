"""uvicorn's httptools protocol with the connection limits it lacks.

uvicorn times out only a keep-alive connection after a response; a connection that never
sends a byte, or sends its request head one byte a second, stays open for ever (finding:
19,900 such connections held, none closed). The ASGI application never sees a request head,
so these limits live in the protocol, one instance per connection:

- idle: a connection without a request in progress is closed after ``idle_timeout``, from the
  moment it opens as well as after each response (uvicorn's keep-alive timer, armed earlier);
- header: a request head must be complete within ``header_timeout`` of its first byte, or the
  connection gets a 408 and is closed (lingering, below);
- head size: a request head larger than :data:`MAX_HEAD_BYTES` gets a 431 and the connection
  is closed, lingering (llhttp, unlike h11, sets no limit of its own: it would buffer a head
  without end);
- a response sent before the request was read to the end (a refusal: 401, 413, 408, 431)
  ends the connection with a lingering close, as nginx does: the hub half-closes (FIN), then
  discards what the client still sends for at most ``LINGER_BYTES`` and ``header_timeout``
  seconds before it closes. Closing at once would reset the connection with the client's data
  unread, and a client that sends its whole body before reading (httpx, requests) would then
  see a reset instead of the refusal. The body is never buffered: memory stays flat;
- at most ``max_connections`` connections: one more is closed as soon as it opens;
- a graceful stop closes an idle keep-alive connection only after :data:`SHUTDOWN_GRACE_SECONDS`,
  not at once as uvicorn does: a request the client sent on it meanwhile (it cannot know the
  hub is stopping) is answered, with ``Connection: close``, instead of finding its connection
  closed with no answer (a publisher then cannot tell whether its events were accepted; a
  test publishing through a restart of the API saw ``ReadError``).

The body timeout is the request guard's (hub/api/limits.py): the application reads the body.

httptools (llhttp, in C) rather than h11 (pure Python): h11 cost about 49 µs of CPU per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = structlog.get_logger(__name__)

#: What a lingering close discards at most before it closes anyway.
LINGER_BYTES = 64 * 1024 * 1024
#: The largest request head (request line and headers), as h11's default under uvicorn.
MAX_HEAD_BYTES = 16 * 1024
#: How long a stopping server keeps an idle keep-alive connection open for a request already
#: on its way (loopback or a network round trip, well within).
SHUTDOWN_GRACE_SECONDS = 0.5


def _plain(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


_TIMEOUT_RESPONSE = _plain(b"408 Request Timeout", b"the request head did not arrive in time\n")
_TOO_LARGE_RESPONSE = _plain(
    b"431 Request Header Fields Too Large",
    b"the request head is larger than %d bytes; send fewer or shorter headers\n" % MAX_HEAD_BYTES,
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; build a configured class with :func:`guarded_protocol`."""

    idle_timeout: float = 5.0
    header_timeout: float = 10.0
    max_connections: int = 1000

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.idle_timeout  # type: ignore[assignment]  # uvicorn types it int
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started: float | None = None  # when the head in progress began (loop time)
        self._head_bytes = 0  # bytes received while that head was in progress
        self._in_body = False  # a head parsed, its body not yet to the end
        self._linger_left: int | None = None  # bytes a lingering close still discards
        self._stopping = False  # the server stops: every request from now on closes after its answer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("http_connection_refused", reason="too many connections", limit=self.max_connections)
            transport.close()
            return
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self._linger_left is not None:
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self.transport.close()
            return
        super().data_received(data)
        if self._head_started is None or self.transport.is_closing():
            return  # the common case: whole heads arrive in one read
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            log.info("http_head_too_large", client=self.client, limit=MAX_HEAD_BYTES)
            self.transport.write(_TOO_LARGE_RESPONSE)
            self._linger()  # the client is still sending: a close now would reset before it reads
        elif self._head_timer is None:
            deadline = self._head_started + self.header_timeout
            self._head_timer = self.loop.call_at(deadline, self._head_timed_out)

    # httptools' parser callbacks: a head begins, is complete; a message (head and body) ends.
    def on_message_begin(self) -> None:
        self._head_started, self._head_bytes = self.loop.time(), 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_started, self._in_body = None, True
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """A graceful stop: a request under way closes its connection after its answer (as in
        uvicorn); an idle connection closes after :data:`SHUTDOWN_GRACE_SECONDS` (see module)."""
        self._stopping = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(SHUTDOWN_GRACE_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._in_body and not self.transport.is_closing():
            self._linger()  # answered before the body was read: a refusal
            return
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _linger(self) -> None:
        self._unset_keepalive_if_required()
        self._cancel_head_timer()
        self._linger_left = LINGER_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the refusal, then end of stream
        self.flow.resume_reading()
        self.loop.call_later(self.header_timeout, self.transport.close)

    def _arm_idle_timer(self) -> None:
        self._unset_keepalive_if_required()
        handler = self.timeout_keep_alive_handler
        self.timeout_keep_alive_task = self.loop.call_later(self.idle_timeout, handler)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_started is None or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # a pipelined head waits
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
            return
        log.info("http_head_timed_out", client=self.client, limit=self.header_timeout)
        self.transport.write(_TIMEOUT_RESPONSE)
        self._linger()  # the client is still sending: a close now would reset before it reads


def guarded_protocol(
    *, idle_timeout: float, header_timeout: float, max_connections: int
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"idle_timeout": idle_timeout, "header_timeout": header_timeout, "max_connections": max_connections},
    )
