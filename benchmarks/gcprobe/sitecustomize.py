"""Loaded by every Python process started with this directory on PYTHONPATH (benchmarks.where):
times each cyclic-GC collection by generation with ``gc.callbacks`` and writes the running
totals (thread CPU seconds ``genN_s`` and count ``genN_n``) to ``$GCPROBE_DIR/<pid>.json``
every half second in which something was collected."""

import gc
import json
import os
import threading
import time

_dir = os.environ.get("GCPROBE_DIR")
if _dir:
    _totals: dict[str, float] = {}
    _started = [0.0]

    def _callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.thread_time()
            return
        key = f"gen{info['generation']}"
        _totals[key + "_s"] = _totals.get(key + "_s", 0.0) + time.thread_time() - _started[0]
        _totals[key + "_n"] = _totals.get(key + "_n", 0.0) + 1

    def _write() -> None:
        path = os.path.join(_dir, f"{os.getpid()}.json")
        written: dict[str, float] = {}
        while True:
            time.sleep(0.5)
            if _totals == written:  # nothing collected since: an idle process stays idle
                continue
            try:
                written = dict(_totals)
            except RuntimeError:  # a collection added a key meanwhile: next time
                continue
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(written, f)
            os.replace(tmp, path)

    gc.callbacks.append(_callback)
    threading.Thread(target=_write, daemon=True, name="gcprobe").start()
