"""Times the garbage collector in every Python process started with this directory on
``PYTHONPATH`` and ``GCSTATS_DIR`` set: per generation, the CPU seconds of its passes (thread
CPU time between ``gc.callbacks``' start and stop), their number, the objects they collected,
and the process's peak RSS, in an mmap'd file ``$GCSTATS_DIR/<pid>`` (``FORMAT``) beside
``<pid>.argv``. :class:`benchmarks.common.CpuMeter` reads it per process group. Measuring only:

    GCSTATS_DIR=/tmp/gc PYTHONPATH=benchmarks/gchook .venv/bin/python -m benchmarks.e2e
"""

from __future__ import annotations

import os
from typing import Any

FORMAT = "3d3q3q1q"  # seconds per generation, passes, collected, peak RSS (KiB)

_dir = os.environ.get("GCSTATS_DIR")
if _dir:
    import gc
    import mmap
    import resource
    import struct
    import time

    _size = struct.calcsize(FORMAT)
    _values: list[Any] = []
    _mapped: list[mmap.mmap] = []
    _started = [0]

    def _open() -> None:
        path = f"{_dir}/{os.getpid()}"
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        os.ftruncate(fd, _size)
        _mapped[:] = [mmap.mmap(fd, _size)]
        os.close(fd)
        _values[:] = [0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0]
        with open("/proc/self/cmdline", "rb") as argv, open(path + ".argv", "wb") as out:
            out.write(argv.read().replace(b"\0", b" "))

    def _callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.thread_time_ns()
            return
        g, v = info["generation"], _values
        v[g] += (time.thread_time_ns() - _started[0]) / 1e9
        v[3 + g] += 1
        v[6 + g] += info["collected"]
        if g or v[3] % 64 == 0:
            v[9] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        struct.pack_into(FORMAT, _mapped[0], 0, *v)

    _open()
    os.register_at_fork(after_in_child=_open)
    gc.callbacks.append(_callback)
