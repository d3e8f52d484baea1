"""The HTTP protocol writes a response's head and body in one write (hub/api/protocol.py): one
``send()`` and one TCP segment per answer instead of uvicorn's two. A streamed answer's head
still leaves before its late body, and in order."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from hub.api.protocol import JOIN_BYTES, guarded_protocol

REQUEST = b"POST /api/v1/events HTTP/1.1\r\nhost: hub\r\ncontent-length: 2\r\n\r\n{}"


class RecordingTransport(asyncio.Transport):
    """A connection that keeps every write, as the socket would get it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.wrote = asyncio.Event()
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.wrote.set()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def serve_one(app: Any, transport: RecordingTransport) -> None:
    """Feed one request to the hub's protocol on ``transport``; return once it is answered."""
    config = Config(app=app, lifespan="off", log_config=None, access_log=False)
    config.load()
    protocol = guarded_protocol(idle_timeout=5, header_timeout=5, max_connections=10)(
        config, ServerState(), app_state={}
    )
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    await asyncio.gather(*protocol.tasks)
    protocol.connection_lost(None)


async def test_a_response_head_and_its_body_leave_in_one_write() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    transport = RecordingTransport()
    await serve_one(app, transport)

    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202")
    assert body == b"{}"


async def test_a_streamed_answers_head_leaves_before_its_late_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await transport.wrote.wait()  # the body waits until the client has the head
        await send({"type": "http.response.body", "body": b"late"})

    transport = RecordingTransport()
    await serve_one(app, transport)

    assert [w[:12] for w in transport.writes] == [b"HTTP/1.1 200", b"late"]
    assert transport.writes[0].endswith(b"\r\n\r\n")


async def test_a_large_body_follows_its_head_in_a_write_of_its_own() -> None:
    body = b"x" * (JOIN_BYTES + 1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        length = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        await send({"type": "http.response.body", "body": body})

    transport = RecordingTransport()
    await serve_one(app, transport)

    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200") and transport.writes[1] == body
