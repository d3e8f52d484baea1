"""``make bench``: the five benchmarks one after the other, then one summary table.

    .venv/bin/python -m benchmarks.suite --check          # make bench: full sizes
    .venv/bin/python -m benchmarks.suite --quick          # smoke run, small sizes (a few minutes)
    .venv/bin/python -m benchmarks.suite --only imports --imports-args="--rows 200000"
    .venv/bin/python -m benchmarks.suite --hub-env KOPPELHUB_WORK_PROCESSES=2   # two work children
    .venv/bin/python -m benchmarks.suite --only projection --projection-args="--processes 2"

Runs ``benchmarks.e2e``, ``.fanout``, ``.projection``, ``.imports`` and ``.idle`` each in a process of its
own with ``--check --json``, while :class:`~benchmarks.summary.LoadSampler` records how busy
the rest of the machine was; then prints the machine, that load, and every figure against
issue 17's floors and as a share of the raw limits each benchmark measured in the same run
(:mod:`benchmarks.limits`). The output below the ``---`` line is what the README's
Performance section shows. With ``--check`` a missed floor (or a benchmark that failed to run)
exits 1. ``--readme README.md`` also puts the summary into the README's Performance section
(between its ``make bench`` markers): run it so on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.summary import Figure, LoadSampler, failed, figures, table

BENCHMARKS = ("e2e", "fanout", "projection", "imports", "idle")
#: The README's Performance section holds the last ``make bench`` summary between these lines.
README_BEGIN = "<!-- make bench: begin (python -m benchmarks.suite --check --readme README.md) -->"
README_END = "<!-- make bench: end -->"
#: Small sizes for a smoke run (``--quick``).
QUICK = {
    "e2e": ["--quick"],
    "fanout": ["--quick", "--phases", "key,none,drain"],
    "projection": ["--events", "5000"],
    "imports": ["--rows", "20000"],
    "idle": ["--seconds", "10"],
}
#: How each benchmark that starts ``koppelhub run`` takes a hub setting (``--hub-env``); projection
#: and imports run the projector and importer without ``run``.
HUB_ENV_FLAG = {"e2e": "--hub-env", "fanout": "--env", "idle": "--hub-env"}
#: The hub settings ``benchmarks.projection`` mirrors with a flag of its own, so ``--hub-env
#: KOPPELHUB_WORK_PROCESSES=2`` also runs its projector in two processes as ``run`` would.
PROJECTION_FLAGS = {
    "KOPPELHUB_WORK_PROCESSES": "--processes",
    "KOPPELHUB_PROJECTOR_MEMBERS": "--members",
    "KOPPELHUB_PROJECTOR_BATCH_SIZE": "--batch-size",
}


def run_one(name: str, extra: Sequence[str], out: Path) -> tuple[int, dict[str, Any] | None, float]:
    """Run ``benchmarks.<name>`` with ``--check --json out``; (exit code, results, seconds)."""
    started = time.monotonic()
    command = [sys.executable, "-m", f"benchmarks.{name}", "--check", "--json", str(out), *extra]
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    code = subprocess.call(command)
    results = json.loads(out.read_text()) if out.exists() else None
    return code, results, time.monotonic() - started


def summarise(
    results: Mapping[str, Mapping[str, Any] | None], codes: Mapping[str, int], load: str
) -> tuple[str, list[Figure]]:
    """The summary text (load, table, raw limits per benchmark) and every row judged."""
    rows: list[Figure] = []
    lines = [f"`make bench`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {load}", ""]
    missing = [n for n in codes if results.get(n) is None]
    for name in codes:
        if (r := results.get(name)) is not None:
            rows += figures(name, r)
    lines += [table(rows), "", "Raw limits measured in the same runs (benchmarks/limits.py):"]
    for name in codes:
        limits = (results.get(name) or {}).get("limits") or {}
        for key, limit in limits.items():
            lines.append(
                f"- raw {key} ({name}): {limit['per_s']:,.0f}/s, {limit['items']:,} in "
                f"{limit['seconds']:.2f} s; {limit['how']}"
            )
    if missing:
        lines.append(f"Did not finish (no results): {', '.join(missing)}; see its output above.")
    return "\n".join(lines), rows


def write_readme(path: Path, summary: str) -> None:
    """Put ``summary`` between :data:`README_BEGIN` and :data:`README_END` in ``path`` (the
    README's Performance section), replacing what was there; ValueError when the markers are
    missing."""
    text = path.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{path} has no {README_BEGIN!r} … {README_END!r} section")
    head = text[: begin + len(README_BEGIN)]
    path.write_text(f"{head}\n{summary.strip()}\n{text[end:]}")


def arguments(name: str, args: argparse.Namespace) -> list[str]:
    """The extra arguments of ``benchmarks.<name>``: the ``--quick`` sizes, its ``--<name>-args``
    and each ``--hub-env`` setting under the flag that benchmark takes it by (projection: the
    settings of :data:`PROJECTION_FLAGS` as its own flags, the others do not apply to it)."""
    extra = [*(QUICK[name] if args.quick else []), *shlex.split(getattr(args, f"{name}_args"))]
    if name in HUB_ENV_FLAG:
        extra += [arg for kv in args.hub_env for arg in (HUB_ENV_FLAG[name], kv)]
    if name == "projection":
        settings = {key: value for key, _, value in (kv.partition("=") for kv in args.hub_env)}
        extra += [
            arg for key, flag in PROJECTION_FLAGS.items() if key in settings for arg in (flag, settings[key])
        ]
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures")
    for name in BENCHMARKS:
        parser.add_argument(f"--{name}-args", default="", metavar="ARGS", help=f"extra arguments for {name}")
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="KOPPELHUB_X=V",
        help=f"hub setting for {', '.join(HUB_ENV_FLAG)} (they start `koppelhub run`), repeatable",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a floor is missed")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every result as JSON to FILE")
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="FILE",
        help="put the summary into FILE's make-bench section (the README; run it on a quiet machine)",
    )
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := set(chosen) - set(BENCHMARKS):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    results: dict[str, dict[str, Any] | None] = {}
    codes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="koppelhub-bench-suite-") as tmp, LoadSampler() as sampler:
        for name in chosen:
            extra = arguments(name, args)
            codes[name], results[name], seconds = run_one(name, extra, Path(tmp) / f"{name}.json")
            print(f"=== {name}: exit {codes[name]} after {seconds:.0f} s", flush=True)
    text, rows = summarise(results, codes, sampler.describe())
    print("\n---\n" + text)
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "codes": codes}, indent=2, default=str) + "\n")
    if args.readme is not None:
        write_readme(args.readme, text)
        print(f"\n(the summary is now in {args.readme})")
    broken = [n for n, code in codes.items() if results.get(n) is None or code not in (0, 1)]
    return 1 if args.check and (failed(rows) or broken) else 0


if __name__ == "__main__":
    sys.exit(main())
