"""CPU that the dispatcher's delivery metrics cost per delivered attempt, two trees, in process.

    .venv/bin/python -m benchmarks.delivery_metrics --base /tmp/x15-metrics-base --rounds 6

What the dispatcher tells :class:`hub.adapters.prometheus.PrometheusMetrics` about delivered
attempts (``koppelhub_deliveries_total``, ``koppelhub_delivery_seconds``,
``koppelhub_publish_to_delivery_seconds``), in prometheus-client's multiprocess mode as the hub
runs it (a fresh ``PROMETHEUS_MULTIPROC_DIR``): rounds of ``--batch`` delivered attempts with
attempt times spread over 2-40 ms and end-to-end times over 20-900 ms (several buckets each),
reported per attempt. A tree whose ``attempts_recorded`` takes the end-to-end times gets them
per round; an older one gets one ``delivered_after`` call per attempt, as its dispatcher made
them. Each tree runs in a fresh interpreter; rounds alternate the trees in both orders
(old-new, then new-old), and the median of each tree's process CPU (``time.process_time``) per
attempt is printed with the lowest and highest round.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import paired

CHILD = """
import inspect, json, os, statistics, time
from hub.adapters.prometheus import PrometheusMetrics

N, BATCH = int(os.environ["BENCH_N"]), int(os.environ["BENCH_BATCH"])
m = PrometheusMetrics()
seconds = [0.002 + 0.038 * (i % 7) / 6 for i in range(BATCH)]
after = [0.02 + 0.88 * (i % 11) / 10 for i in range(BATCH)]
per_round = "delivered_after" in inspect.signature(m.attempts_recorded).parameters

def run() -> None:
    for _ in range(N // BATCH):
        if per_round:
            m.attempts_recorded({"delivered": BATCH}, (s for s in seconds), (a for a in after))
        else:
            m.attempts_recorded({"delivered": BATCH}, (s for s in seconds))
            for a in after:
                m.delivered_after(a)

run()  # warm up: the label's child and its place in the file
times = []
for _ in range(5):
    started = time.process_time()
    run()
    times.append((time.process_time() - started) / N * 1e6)
print(json.dumps(statistics.median(times)))
"""


def _run(tree: Path, n: int, batch: int) -> float:
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-metrics-") as files:
        env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_N": str(n), "BENCH_BATCH": str(batch)}
        env["PROMETHEUS_MULTIPROC_DIR"] = files
        child = [sys.executable, "-c", CHILD]
        done = subprocess.run(child, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    us: float = json.loads(done.stdout.strip().splitlines()[-1])
    return us


def main(trees: dict[str, Path], rounds: int, n: int, batch: int) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {name: [] for name in trees}
    names = list(trees)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            seen[name].append(_run(trees[name], n, batch))
    return {
        f"{name} us per attempt (median, min, max)": [round(f(us), 3) for f in (statistics.median, min, max)]
        for name, us in seen.items()
    }


if __name__ == "__main__":
    parser = paired.tree_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="attempts per recording round (100)")
    args = parser.parse_args()
    print(json.dumps(main(paired.trees(args.base), args.rounds, args.attempts, args.batch), indent=2))
