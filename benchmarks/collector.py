"""The OTLP/HTTP collector stand-in of ``benchmarks.observability``: a real HTTP server on
loopback that decodes each trace export request, counts its spans per request path (each hub
exports to a path of its own) and discards them (a subclass may keep them: :meth:`received`)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that counts the spans in each export request and discards them;
    keep-alive, as an OpenTelemetry Collector is."""

    protocol_version = "HTTP/1.1"

    spans = 0
    requests = 0
    by_path: ClassVar[dict[str, int]] = {}  # spans per request path: each hub has its own
    undecodable = 0  # kept in /tmp/koppelhub-otlp-undecodable-<n>.bin to look at
    lock = threading.Lock()

    def do_POST(self) -> None:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not self.path.endswith("/v1/traces"):  # the embedded Tansu exports its metrics here too
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except DecodeError:
            with Collector.lock:
                Collector.undecodable += 1
                Path(f"/tmp/koppelhub-otlp-undecodable-{Collector.undecodable}.bin").write_bytes(body)
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        n = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with Collector.lock:
            Collector.spans += n
            Collector.by_path[self.path] = Collector.by_path.get(self.path, 0) + n
            Collector.requests += 1
            self.received(request)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def received(self, request: Any) -> None:
        """Each decoded export request (an ``ExportTraceServiceRequest``), under :attr:`lock`:
        a subclass that wants the spans themselves keeps what it needs (the tests do)."""

    def log_message(self, format: str, *args: object) -> None:
        pass
