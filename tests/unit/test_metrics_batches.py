"""The per-attempt histograms are written once per recording round (batch_observer): what they
expose must be exactly what one ``observe`` per value gives, in one process and in
prometheus-client's multiprocess mode. batch_observer reads a histogram's private parts (the
library has no batch observe), so these tests are its contract with prometheus-client: they fail
when an upgrade changes that layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from hub.adapters.prometheus import (
    BUCKETS,
    END_TO_END_BUCKETS,
    MULTIPROC_ENV,
    PrometheusMetrics,
    batch_observer,
)
from tests.unit.test_metrics import samples

#: On a bound (counted in its bucket, le is inclusive), between bounds, above the last (+Inf).
SECONDS = [0.0, 0.001, 0.0011, 0.004, 0.005, 0.005, 0.3, 2.0, 29.9, 30.0, 31.0, 500.0]
#: End to end, one negative (two hosts' clocks): counted as 0, as the adapter always did.
AFTER = [-0.2, 0.0, 0.005, 0.02, 0.9, 61.0, 3600.0, 86_400.0, 90_000.0]
FAMILIES = ("koppelhub_delivery_seconds", "koppelhub_publish_to_delivery_seconds")

#: Writes the two rounds either through the adapter (once per round) or, as the reference,
#: through plain histograms of the same names and buckets, one observe per value.
WRITER = """
import sys
from prometheus_client import CollectorRegistry, Histogram
from hub.adapters.prometheus import BUCKETS, END_TO_END_BUCKETS, PrometheusMetrics
SECONDS, AFTER = {seconds!r}, {after!r}
if sys.argv[1] == "rounds":
    m = PrometheusMetrics()
    half = len(SECONDS) // 2
    m.attempts_recorded({{"delivered": half}}, SECONDS[:half], AFTER[:3])
    m.attempts_recorded({{"delivered": len(SECONDS) - half}}, iter(SECONDS[half:]), iter(AFTER[3:]))
else:
    r = CollectorRegistry()
    d = Histogram("koppelhub_delivery_seconds", "x", registry=r, buckets=BUCKETS)
    e = Histogram("koppelhub_publish_to_delivery_seconds", "x", registry=r, buckets=END_TO_END_BUCKETS)
    for s in SECONDS:
        d.observe(s)
    for s in AFTER:
        e.observe(max(0.0, s))
"""
READER = """
import sys
from hub.adapters.prometheus import PrometheusMetrics
sys.stdout.write(PrometheusMetrics().exposition()[0].decode())
"""


def _histograms(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        key: value
        for key, value in samples(text).items()
        if key[0].startswith(FAMILIES) and not key[0].endswith("_created")
    }


def _same(
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    want: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> None:
    assert got.keys() == want.keys()
    assert len(got) == 2 * 2 + len(BUCKETS) + 1 + len(END_TO_END_BUCKETS) + 1  # count, sum, each bucket
    for key, value in want.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, rel=1e-12), key  # added in another order
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("buckets", [BUCKETS, END_TO_END_BUCKETS])
def test_the_histogram_layout_batch_observer_relies_on_is_this_library_s(buckets: tuple[float, ...]) -> None:
    histogram = Histogram("h", "h", registry=CollectorRegistry(), buckets=buckets)
    assert batch_observer(histogram, buckets) is not None
    assert batch_observer(object(), buckets) is None  # what a changed library would get: observe per value


def test_rounds_expose_what_one_observe_per_value_gives_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    metrics = PrometheusMetrics()
    half = len(SECONDS) // 2
    metrics.attempts_recorded({"delivered": half}, SECONDS[:half], AFTER[:3])
    metrics.attempts_recorded({"delivered": len(SECONDS) - half}, iter(SECONDS[half:]), iter(AFTER[3:]))
    metrics.attempts_recorded({}, [], [])  # an empty round writes nothing

    reference = CollectorRegistry()
    delivery = Histogram(FAMILIES[0], "x", registry=reference, buckets=BUCKETS)
    end_to_end = Histogram(FAMILIES[1], "x", registry=reference, buckets=END_TO_END_BUCKETS)
    for s in SECONDS:
        delivery.observe(s)
    for s in AFTER:
        end_to_end.observe(max(0.0, s))

    _same(_histograms(metrics.exposition()[0].decode()), _histograms(generate_latest(reference).decode()))


def test_rounds_expose_what_one_observe_per_value_gives_in_multiprocess_mode(tmp_path: Path) -> None:
    rendered = {}
    for how in ("rounds", "observe"):
        env = {**os.environ, MULTIPROC_ENV: str(tmp_path / how)}
        (tmp_path / how).mkdir()
        writer = WRITER.format(seconds=SECONDS, after=AFTER)
        subprocess.run([sys.executable, "-c", writer, how], env=env, check=True)
        read = subprocess.run([sys.executable, "-c", READER], env=env, check=True, capture_output=True)
        rendered[how] = _histograms(read.stdout.decode())
    _same(rendered["rounds"], rendered["observe"])
