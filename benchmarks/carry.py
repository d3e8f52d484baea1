"""CPU an event carrying its trace context (``traceparent``) costs more than one without, stage
by stage, in process, two code trees.

    .venv/bin/python -m benchmarks.carry --base /tmp/x15-carry-base --rounds 4

Every event the hub publishes carries ``traceparent`` (so a subscriber can join its trace). Each
stage runs over ``--events`` events without it, then with it (both orders, alternating), in a
fresh interpreter per tree and round; process CPU (``time.process_time``) per event, the garbage
collector off while a stage is timed (a collection fell in one stage or another by chance):

- ``publish.parse``: :func:`schemas.parse_batch` of batches of 100 events (the API);
- ``publish.stamp``: :func:`hub.tracing.carry_trace` on a fresh event (the API);
- ``publish.encode``: :func:`schemas.bindings.to_kafka_record` (the API);
- ``bind.decode``: :func:`schemas.bindings.from_kafka_record` (the projector);
- ``proj.rows``: the archive row's structured event and its JSON (the projector);
- ``proj.attrs``: :meth:`CloudEvent.attributes` for the subscription match (the projector);
- ``disp.claim``: the claimed event's JSON decoded (the dispatcher);
- ``disp.trace``: the dispatcher's look at the event's context and the headers it sends;
- ``disp.structured``/``disp.binary``: the delivery body and headers per content mode.

Printed per tree and stage: the median without, with, and the difference (what carrying costs).
The child imports the hub's modules only, so any tree of the hub can be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import paired

CHILD = """
import gc, json, os, time
import orjson
from hub.tracing import carry_trace, left_out, passed_on
from schemas.bindings import from_kafka_record, parse_batch, to_kafka_record
from schemas.envelope import validate_event
from subscriptions.delivery import SharedEvent, encode_binary, encode_structured
N = int(os.environ["BENCH_N"])
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
def raw(i, tp):
    out = {"specversion": "1.0", "id": f"id-{i}", "source": "https://example.org/src",
           "type": "nl.example.thing.changed.v1", "subject": f"subj-{i % 50}",
           "time": "2026-11-30T12:00:00Z", "datacontenttype": "application/json",
           "data": {"naam": "x" * 40, "n": i, "tags": ["a", "b"]}}
    if tp:
        out["traceparent"] = TP
    return out
def per_event(fn, items):
    gc.collect()
    gc.disable()  # a collection falls in one stage or another by chance: timed without
    started = time.process_time()
    for item in items:
        fn(item)
    spent = time.process_time() - started
    gc.enable()
    return spent / len(items) * 1e6
def trace(event):
    value = event.get("traceparent")
    carried = value if isinstance(value, str) else None
    left_out(carried)
    return {"x-a": "b"} if carried is None else {"x-a": "b", "traceparent": passed_on(carried)}
def stages(tp):
    raws = [raw(i, tp) for i in range(N)]
    bodies = [json.dumps(raws[i:i + 100]).encode() for i in range(0, N, 100)]
    out = {"publish.parse": per_event(lambda b: parse_batch(b, max_bytes=1 << 20), bodies) / 100}
    fresh = [validate_event(raw(i, False)) for i in range(N)]
    out["publish.stamp"] = per_event(lambda e: carry_trace((e,), TP if tp else None), fresh)
    events = [validate_event(r) for r in raws]
    out["publish.encode"] = per_event(to_kafka_record, events)
    records = [to_kafka_record(e) for e in events]
    out["bind.decode"] = per_event(lambda r: from_kafka_record(r.key, r.value, r.headers), records)
    out["proj.rows"] = per_event(lambda e: orjson.dumps(e.to_structured()), events)
    events = [validate_event(r) for r in raws]  # nothing cached yet, as in the projector
    out["proj.attrs"] = per_event(lambda e: e.attributes(), events)
    texts = [orjson.dumps(e.to_structured()).decode() for e in events]
    out["disp.claim"] = per_event(lambda t: SharedEvent(json.loads(t)), texts)
    shared = [SharedEvent(json.loads(t)) for t in texts]
    out["disp.trace"] = per_event(trace, shared)
    out["disp.structured"] = per_event(encode_structured, shared)
    out["disp.binary"] = per_event(encode_binary, shared)
    return out
stages(False), stages(True)  # warm up: imports, first-call caches
first = int(os.environ["BENCH_ROUND"]) % 2 == 1
seen = {tp: stages(tp) for tp in ((True, False) if first else (False, True))}
print(json.dumps({"without": seen[False], "with": seen[True]}))
"""


def _run(tree: Path, n: int, round_: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_N": str(n), "BENCH_ROUND": str(round_)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(trees: dict[str, Path], rounds: int, n: int) -> dict[str, dict[str, list[float]]]:
    seen: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in trees}
    names = list(trees)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:  # both orders
            seen[name].append(_run(trees[name], n, r))
    out: dict[str, dict[str, list[float]]] = {}
    for name, runs in seen.items():
        out[name] = {
            stage: [
                round(statistics.median(run["without"][stage] for run in runs), 2),
                round(statistics.median(run["with"][stage] for run in runs), 2),
                round(statistics.median(run["with"][stage] - run["without"][stage] for run in runs), 2),
            ]
            for stage in runs[0]["without"]
        }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="a checkout of the old code (e.g. git archive integ3)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--events", type=int, default=10000)
    args = parser.parse_args()
    result = main(paired.trees(args.base), args.rounds, args.events)
    print(f"{'us per event':16}" + "".join(f" | {name + ': without, with, +':>26}" for name in result))
    for stage in next(iter(result.values())):
        cells = (f" | {w:8.2f} {c:8.2f} {d:+8.2f}" for w, c, d in (r[stage] for r in result.values()))
        print(f"{stage:16}" + "".join(cells))
