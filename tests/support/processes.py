"""The processes of a running ``koppelhub run`` as the tests see them through ``/proc``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def role_children(parent: int) -> list[tuple[str, int]]:
    """The role processes of a multi-process ``run``: (roles, pid), roles as "api,connectors"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and b"worker" in argv:
            found.append((argv[argv.index(b"--roles") + 1].decode(), int(entry.name)))
    return sorted(found)


def counted_by(pid: int, sample: str, metrics_dir: Path) -> float:
    """What process ``pid`` alone counted of the counter ``sample`` (summed over its labels): its
    own file in prometheus-client's multiprocess directory (``<data dir>/metrics``), read
    through that library's collector, as ``/metrics`` reads every process's files."""
    from prometheus_client.multiprocess import MultiProcessCollector

    with tempfile.TemporaryDirectory() as alone:
        for own in metrics_dir.glob(f"counter_{pid}.db"):
            shutil.copy(own, alone)
        collected = MultiProcessCollector(None, path=alone).collect()  # type: ignore[no-untyped-call]
        return sum(s.value for metric in collected for s in metric.samples if s.name == sample)
