"""CPU cost of the hub's tracing per delivery attempt, without the rest of the hub.

    .venv/bin/python -m benchmarks.tracing              # 20,000 attempts per mode

Runs the dispatcher's tracing steps per attempt (``hub.tracing.context_of`` of the event's
traceparent, the "deliver attempt" span with its attributes, ``current_traceparent`` for the
sink's header) in three modes: no SDK (what runs without OTEL_* variables), the SDK with
``parentbased_traceidratio`` at 0.01 (README's advice) and with every trace sampled
(``parentbased_always_on``, the SDK's default). The spans go through the BatchSpanProcessor and
the OTLP/HTTP exporter to a loopback collector that answers 200, so the export thread's CPU is
counted too (process CPU: ``time.process_time``). Each mode runs in its own interpreter: the
tracer provider is set once per process. Issue 15's floor: tracing costs at most 5 % of the
hub's CPU per delivered event (``benchmarks.e2e`` reports it: about 1.1 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = {
    "off": {},
    "ratio_0.01": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "ratio_0.1": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "always_on": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


def _deferred(n: int) -> dict[str, str]:
    """The batch processor holds every span of the run until the flush."""
    return {"OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_BSP_MAX_QUEUE_SIZE": str(n + 1),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(n)}  # fmt: skip


class _Collector(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


#: What the events carry: a sampled publish's context, an unsampled one's (flags 00: the
#: parent-based sampler leaves the attempt out), or none (the sampler decides anew).
CARRIED = {"sampled": "01", "unsampled": "00", "none": None}


def _attempts(n: int, flags: str | None) -> float:
    """Process CPU seconds of ``n`` attempts' tracing steps (as hub.services.dispatcher)."""
    from opentelemetry.trace import SpanKind

    from hub.tracing import TRACEPARENT, context_of, traceparent_of, tracer

    parents = [f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-{flags}" for _ in range(100)]
    started = time.process_time()
    for i in range(n):
        with tracer().start_span(
            "deliver attempt",
            context=context_of(parents[i % 100] if flags else None),
            kind=SpanKind.CLIENT,
            attributes={
                "koppelhub.subscription.id": "0c0ffee0-0000-4000-8000-000000000000",
                "koppelhub.delivery.attempt": 1,
            },
        ) as span:
            headers = {"content-type": "application/json"}
            if (tp := traceparent_of(span)) is not None:
                headers = {**headers, TRACEPARENT: tp}
            if span.is_recording():
                span.set_attribute("koppelhub.delivery.outcome", "delivered")
                span.set_attribute("http.response.status_code", 200)
    return time.process_time() - started


def _child(n: int, flags: str | None) -> None:
    """One mode in this interpreter: the attempts with their spans queued (the processor's
    schedule set past the loop, so no export runs during it), then the export of them all."""
    from hub.adapters.tracing import configure_tracing

    installed = configure_tracing()
    from opentelemetry import trace

    spans = _attempts(n, flags)
    flushed = time.process_time()
    if installed:
        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    export = time.process_time() - flushed
    print(json.dumps({
        "installed": installed, "cpu_us_per_attempt": round((spans + export) / n * 1e6, 2),
        "span_us": round(spans / n * 1e6, 2), "export_us": round(export / n * 1e6, 2),
    }))  # fmt: skip


def main(n: int) -> dict[str, object]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    out: dict[str, object] = {"attempts": n}
    try:
        for carried, flags in CARRIED.items():
            for mode, env in MODES.items():
                child_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                if mode != "off":  # every span queued until the flush: span and export apart
                    child_env.update(env, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **_deferred(n))
                code = f"from benchmarks.tracing import _child; _child({n}, {flags!r})"
                done = subprocess.run(
                    [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
                )
                key = f"{mode} ({carried} traceparent)"
                out[key] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.shutdown()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20_000)
    print(json.dumps(main(parser.parse_args().attempts), indent=2))
