"""CPU of a publish by layer, from a raw py-spy profile of the api child.

    .venv/bin/python -m benchmarks.spy_layers /tmp/publish/structured.txt --us 350 [--detail LAYER ...]

Reads ``benchmarks.publish_cpu --py-spy DIR``'s raw profile (``stack count`` a line) and puts
each sample in the layer of the deepest frame that matches a layer's pattern (so library code
counts for the hub layer that called it, and the event loop only gets what no layer claims:
uvloop's own work, its socket calls). ``--us`` (the api child's CPU per request from the same
run) turns shares into µs per request; ``--detail`` lists a layer's top frames.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

#: Layers and the frames that are theirs (regular expressions on py-spy's frame names).
LAYERS: list[tuple[str, str]] = [
    ("write-ahead COPY (psycopg)", r"group_commit\.py|psycopg/"),
    ("kafka: acknowledgement read", r"AIOKafkaConnection\._read|_handle_frame"),
    ("kafka: sender routine", r"aiokafka/producer/sender|aiokafka/client\.py"),
    ("kafka: record append", r"hub/adapters/kafka\.py|aiokafka/producer/producer|partitioner"),
    ("envelope to Kafka record / WAL row", r"to_kafka_record|wal_row|schemas/bindings"),
    ("body parse and validation", r"parse_structured|_parse \(hub/api/events|_check_landscape_data|schemas/"),
    ("organisation checks", r"check_publish|stamp_events|hub/api/ownership"),
    ("auth", r"authenticate|authorise|hub/api/auth\.py"),
    ("rate limiter", r"rate_limits|_limiter"),
    ("metrics", r"prometheus|metrics"),
    ("tracing", r"tracing|opentelemetry"),
    ("logging", r"structlog|logging/"),
    ("audit trail", r"audit_trail"),
    (
        "response",
        r"JSONResponse|Response\.__call__|init_headers|dumps_compact|with_header|RequestResponseCycle\.send",
    ),
    ("request guard", r"hub/api/limits\.py"),
    ("Starlette request", r"starlette/(requests|datastructures)|_body \(hub"),
    ("publish chain (HubApp, accept)", r"hub/api/app\.py|hub/api/events\.py"),
    ("uvicorn/httptools protocol", r"uvicorn/|hub/api/protocol\.py|httptools"),
    ("event loop", r"asyncio/|uvloop"),
]


def attribute(lines: Sequence[str], detail: set[str]) -> tuple[Counter[str], int, dict[str, Counter[str]]]:
    """Samples per layer, all samples, and the top frames of the layers in ``detail``."""
    rules = [(name, re.compile(pattern)) for name, pattern in LAYERS]
    counts: Counter[str] = Counter()
    frames_of: dict[str, Counter[str]] = defaultdict(Counter)
    total = 0
    for line in lines:
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples, frames = int(n), stack.split(";")
        total += samples
        best, depth = "other", -1
        for name, rule in rules:
            for i in range(len(frames) - 1, depth, -1):
                if rule.search(frames[i]):
                    best, depth = name, i
                    break
        counts[best] += samples
        if best in detail:
            frames_of[best][";".join(frames[depth : depth + 2])] += samples
    return counts, total, frames_of


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.spy_layers", description=__doc__.split("\n\n")[0])
    p.add_argument("profile", help="a raw py-spy profile (-f raw)")
    p.add_argument("--us", type=float, help="the api child's CPU per request in µs, same run")
    p.add_argument("--detail", action="append", default=[], metavar="LAYER")
    args = p.parse_args(argv)
    with open(args.profile) as f:
        counts, total, frames_of = attribute(f.readlines(), set(args.detail))
    for name, n in counts.most_common():
        share = n / total
        per = f"  {share * args.us:6.0f} µs" if args.us else ""
        print(f"{100 * share:5.1f} %{per}  {name}")
    print(f"{total} samples")
    for name, frames in frames_of.items():
        print(f"== {name}")
        for frame, n in frames.most_common(15):
            print(f"  {n:5d}  {frame}")


if __name__ == "__main__":
    main()
