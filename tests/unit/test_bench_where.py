"""benchmarks.where: py-spy's raw lines read per thread and function, and scaled to /proc CPU."""

from __future__ import annotations

from collections import Counter

from benchmarks.where import by_function, by_thread, frames_of, per_event

MAIN = "thread (101): MainThread;run (uvloop/__init__.py:92);_attempt (hub/services/dispatcher.py:270)"
EXPORT = "thread (102): OtelBatchSpanRecordProcessor;worker (_shared_internal/__init__.py:162)"


def test_a_raw_stack_is_split_into_its_thread_and_frames_without_line_numbers() -> None:
    thread, frames = frames_of(MAIN)
    assert thread == "thread (101): MainThread"
    assert frames == ["run (uvloop/__init__.py)", "_attempt (hub/services/dispatcher.py)"]


def test_samples_are_summed_per_thread_and_per_function_self_and_total() -> None:
    samples = Counter({MAIN: 3, EXPORT: 1, MAIN.replace(":270", ":271"): 2})
    assert by_thread(samples) == {"MainThread": 5, "OtelBatchSpanRecordProcessor": 1}
    assert by_function(samples, total=False)["_attempt (hub/services/dispatcher.py)"] == 5
    assert by_function(samples, total=True)["run (uvloop/__init__.py)"] == 5


def test_samples_become_cpu_per_event_by_their_share_of_the_process_cpu() -> None:
    """Raw samples overstate CPU on a busy machine (runnable counts as active): only shares count."""
    run = {"s": Counter({MAIN: 300, EXPORT: 100}), "name": "work",
           "result": {"hub_cpu_us_per_event_by_process": {"work": 400.0}}}  # fmt: skip
    assert per_event([run], lambda r: by_thread(r["s"]), 200) == {
        "MainThread": 300.0,
        "OtelBatchSpanRecordProcessor": 100.0,
    }
