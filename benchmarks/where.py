"""Where a lone hub's CPU per event goes, per config and per process: a differential profile.

    .venv/bin/python -m benchmarks.where --configs off,metrics+tracing --events 10000 --rounds 2

For each round and config (in :func:`benchmarks.paired.balanced_orders`) a fresh hub is started
and warmed up as ``benchmarks.observability --apart --fresh`` does; then ``py-spy record
--nonblocking`` runs on each of the hub's processes (``run`` and its API children, the
work child) for the batch phase only. Samples are turned into CPU per delivered event (samples /
rate / delivered; idle samples dropped) and summed per process role, per thread and per
function (self and total). Every hub also runs with ``benchmarks/gchook`` on PYTHONPATH,
which times each cyclic-GC collection by generation (``gc.callbacks``) and keeps the totals
of each process in a file of its own. Prints per config the CPU per event by process (from /proc and from
the samples), the GC time per event by generation, and the functions whose total differs most
between the first config and each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks import observability
from benchmarks.collector import Collector
from benchmarks.common import gc_stats
from benchmarks.paired import balanced_orders

PROBE = Path(__file__).with_name("gchook")
#: The role of the process that projects and delivers (hub/children.py).
WORK = "projector,dispatcher"


def role(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if b"--roles" in argv:
        return argv[argv.index(b"--roles") + 1].decode()
    return "run"


def spy(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(py_spy), "record", "--nonblocking", "--gil", "--threads", "-r", str(rate), "-f", "raw",
         "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


_LINE = re.compile(r":\d+\)$")


def frames_of(stack: str) -> tuple[str, list[str]]:
    """(thread, frames outermost first) of a raw py-spy line's stack (``--threads``: its first
    part is ``thread (TID): NAME``), each frame ``function (file)`` without its line number."""
    parts = stack.split(";")
    thread = parts[0] if parts and parts[0].startswith("thread") else ""
    return thread, [_LINE.sub(")", p) for p in parts[1 if thread else 0 :]]


def read_raw(path: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                out[stack] += int(n)
    return out


async def one(config: str, endpoint: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    gcdir = Path(tempfile.mkdtemp(prefix="gcstats-", dir=work))
    os.environ["GCSTATS_DIR"] = str(gcdir)
    os.environ["PYTHONPATH"] = str(PROBE) + (
        os.pathsep + os.environ["BASE_PYTHONPATH"] if os.environ.get("BASE_PYTHONPATH") else ""
    )
    running = await observability.start(config, endpoint, args)
    try:
        groups = running.hub.process_groups()
        pids = {pid: role(pid) for pid in groups["hub"] + groups["work"] if "pg_watchdog" not in role(pid)}
        outs = {pid: work / f"{config.replace('+', '_')}-{pid}.txt" for pid in pids}
        spies = [spy(pid, outs[pid], args.rate) for pid in pids]
        await asyncio.sleep(1.0)  # py-spy attached
        gc0 = gc_totals(gcdir, pids)
        result = await observability.measure(running, 0)
        gc1 = gc_totals(gcdir, pids)
        for s in spies:
            s.send_signal(signal.SIGINT)
        for s in spies:
            s.wait(30)
        n = max(1, result["delivered"])
        per_process: dict[str, Counter[str]] = defaultdict(Counter)
        for pid, name in pids.items():
            per_process[name].update(read_raw(outs[pid]))
        gc = {k: (gc1.get(k, 0.0) - gc0.get(k, 0.0)) / n * 1e6 for k in set(gc0) | set(gc1)}
        return {"result": result, "samples": per_process, "n": n, "gc": gc}
    finally:
        await observability.stop(running)


def gc_totals(gcdir: Path, pids: dict[int, str]) -> dict[str, float]:
    """Seconds in collections of each generation and their count, summed over the processes of
    each role (benchmarks/gchook's files)."""
    out: dict[str, float] = defaultdict(float)
    for f in gcdir.iterdir():
        if not f.name.isdigit() or (stats := gc_stats(gcdir, int(f.name))) is None:
            continue
        name = pids.get(int(f.name), "other")
        for g in range(3):
            out[f"{name}:gen{g}_s"] += stats[g]
            out[f"{name}:gen{g}_n"] += stats[3 + g]
    return dict(out)


def by_function(samples: Counter[str], total: bool) -> Counter[str]:
    out: Counter[str] = Counter()
    for stack, n in samples.items():
        _, frames = frames_of(stack)
        if not frames:
            continue
        if total:
            for f in set(frames):
                out[f] += n
        else:
            out[frames[-1]] += n
    return out


def by_thread(samples: Counter[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for stack, n in samples.items():
        thread, _ = frames_of(stack)
        out[thread.partition(": ")[2]] += n  # by name: the same thread of every run (pids differ)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.where", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="off,metrics+tracing")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--sampler", default="parentbased_traceidratio:0.1")
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--report", type=Path, default=None, help="report a --json file again, run nothing")
    args = p.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    if args.report:
        loaded = json.loads(args.report.read_text())
        report(
            configs,
            {
                c: [dict(r, samples={k: Counter(v) for k, v in r["samples"].items()}) for r in rs]
                for c, rs in loaded.items()
            },
            args,
        )
        return 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    work = Path(tempfile.mkdtemp(prefix="where-"))
    os.environ["BASE_PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_, order in enumerate(balanced_orders(configs, args.rounds), 1):
        for config in order:
            r = asyncio.run(one(config, endpoint, args, work))
            runs[config].append(r)
            res = r["result"]
            print(f"round {round_} {config:<24} {res['hub_cpu_us_per_event']:>7.1f} us/event "
                  f"{res['hub_cpu_us_per_event_by_process']} gc {fmt(r['gc'])}", flush=True)  # fmt: skip
    server.shutdown()
    report(configs, runs, args)
    return 0


#: Frames of the instrumentation itself, as py-spy names their files (paths shortened to the
#: import root): the OpenTelemetry API and SDK (``trace/``, ``context/``, ``attributes/``,
#: ``util/instrumentation``), the OTLP exporter and its encoder (``http/trace_exporter``,
#: ``common/``, ``_shared_internal`` is the batch span processor's thread, ``transport/``,
#: protobuf and the requests stack it posts with), prometheus-client and the hub's own adapters.
#: A sample counts when any frame of its stack is one: CPU the hub spends in them or under them.
INSTRUMENTATION = re.compile(
    r"\((?:trace/|context/|attributes/|util/instrumentation|http/trace_exporter|common/|_shared_internal|"
    r"transport/|protobuf/|requests/|urllib3/|prometheus_client/|hub/adapters/prometheus\.py|hub/tracing\.py|"
    r"hub/adapters/span_relay\.py)"
)


def instrumentation_share(runs: list[dict[str, Any]], only: str | None = None) -> list[tuple[float, float]]:
    """Per run, (CPU us per delivered event, share of the hub's CPU) spent in or under the
    instrumentation's frames (:data:`INSTRUMENTATION`), every process and thread of the hub, or
    of the processes of role ``only`` (``projector,dispatcher``: the work process, whose CPU
    bounds end-to-end throughput; ``run`` exports its children's spans).

    A within-run figure: the machine's speed scales these samples and all the others alike, so
    the share holds where throughput and CPU per event move 20-30 % from round to round (an
    A/A pair cannot tell 5 % apart then). It is the direct cost only: what the instrumentation
    makes the rest do (a larger event to encode, more garbage to collect: the gc lines) is not
    in it."""
    out = []
    for r in runs:
        by_process = r["result"]["hub_cpu_us_per_event_by_process"]
        cpu = spent = 0.0
        for name, samples in r["samples"].items():
            total = sum(samples.values())
            if not total or (only is not None and name != only):
                continue
            hit = sum(n for stack, n in samples.items() if INSTRUMENTATION.search(stack))
            cpu += by_process.get(name, 0.0)
            spent += by_process.get(name, 0.0) * hit / total
        out.append((spent, spent / cpu if cpu else 0.0))
    return out


def fmt(gc: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in sorted(gc.items()))


def per_event(runs: list[dict[str, Any]], pick: Any, rate: int) -> Counter[str]:
    """Mean over the runs of CPU microseconds per delivered event of each key ``pick`` gives:
    each run's samples scaled to its process's CPU from /proc. On a busy machine py-spy counts
    a thread that is runnable but waiting for a core as active (state R), so raw samples
    overstate CPU by up to 5x; their shares are what is kept."""
    out: Counter[str] = Counter()
    for r in runs:
        picked = pick(r)
        samples = sum(r["s"].values())
        cpu = r["result"]["hub_cpu_us_per_event_by_process"].get(r["name"], 0.0)
        scale = cpu / samples if samples else 0.0
        for k, v in picked.items():
            out[k] += v * scale / len(runs)
    return out


def report(configs: list[str], runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    ref = configs[0]
    roles = sorted({name for rs in runs.values() for r in rs for name in r["samples"]})
    for name in roles:
        print(f"\n=== process {name} (CPU us per delivered event: py-spy's shares of /proc CPU) ===")
        tables = {}
        for config in configs:
            merged = [dict(r, s=Counter(r["samples"].get(name, {})), name=name) for r in runs[config]]
            tables[config] = {
                "threads": per_event(merged, lambda r: by_thread(r["s"]), args.rate),
                "self": per_event(merged, lambda r: by_function(r["s"], False), args.rate),
                "total": per_event(merged, lambda r: by_function(r["s"], True), args.rate),
            }
        for config in configs:
            t = tables[config]
            print(f"{config}: all {sum(t['threads'].values()):.1f}; threads "
                  + ", ".join(f"{k or '?'} {v:.1f}" for k, v in t["threads"].most_common(6)))  # fmt: skip
        for config in configs[1:]:
            for kind in ("self", "total"):
                a, b = tables[ref][kind], tables[config][kind]
                delta = Counter({k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)})
                print(f"-- {kind}: {config} minus {ref}, largest increases")
                for k, v in delta.most_common(args.top):
                    print(f"  {v:+7.2f}  ({a.get(k, 0):6.2f} -> {b.get(k, 0):6.2f})  {k}")
    print("\n=== the instrumentation's own CPU (in or under its frames), per run ===")
    for config in configs:
        for only, of in ((None, "the hub's CPU"), (WORK, "the work process's CPU"), ("run", "run's CPU")):
            shares = instrumentation_share(runs[config], only)
            median = statistics.median(share for _, share in shares) if shares else 0.0
            print(f"{config}: median {median:.2%} of {of}; runs "
                  + ", ".join(f"{us:.1f} us/event ({share:.2%})" for us, share in shares))  # fmt: skip
    for config in configs:
        gc: Counter[str] = Counter()
        for r in runs[config]:
            for k, v in r["gc"].items():
                gc[k] += v / len(runs[config])
        print(f"gc {config}: {fmt(gc)}  (seconds keys: us per event; count keys: collections per 1e6 events)")
    if args.json:
        args.json.write_text(json.dumps({c: [dict(r, samples={k: dict(v) for k, v in r["samples"].items()})
                                             for r in rs] for c, rs in runs.items()}))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
