"""KOPPELHUB_WORKERS: how many processes `koppelhub run` spreads its roles over, and which."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from hub.children import role_groups
from hub.settings import Settings


def test_workers_default_to_one_process_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPELHUB_WORKERS", raising=False)
    assert Settings().worker_processes() == (len(os.sched_getaffinity(0)))


@pytest.mark.parametrize(("value", "processes"), [("1", 1), ("3", 3), ("auto", len(os.sched_getaffinity(0)))])
def test_workers_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, processes: int
) -> None:
    monkeypatch.setenv("KOPPELHUB_WORKERS", value)
    assert Settings().worker_processes() == processes


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_worker_count_that_is_no_positive_number_or_auto_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("KOPPELHUB_WORKERS", value)
    with pytest.raises(ValidationError, match="workers"):
        Settings()


def test_every_process_beyond_the_first_serves_the_api_and_one_drains() -> None:
    assert role_groups(2) == [("api", "connectors"), ("projector", "dispatcher")]
    assert role_groups(4) == [("api", "connectors")] * 3 + [("projector", "dispatcher")]


@pytest.mark.parametrize(
    ("variable", "field", "default", "other", "refused"),
    [
        ("KOPPELHUB_WORK_PROCESSES", "work_processes", 1, 3, 0),
        ("KOPPELHUB_DISPATCH_PROCESSES", "dispatch_processes", 1, 0, -1),
    ],
)
def test_one_work_and_one_dispatch_process_by_default_and_as_many_as_their_settings_say(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, default: int, other: int, refused: int
) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert getattr(Settings(), field) == default
    monkeypatch.setenv(variable, str(other))
    assert getattr(Settings(), field) == other
    monkeypatch.setenv(variable, str(refused))
    with pytest.raises(ValidationError, match=field):
        Settings()


def test_work_processes_add_projector_and_dispatcher_children_beside_the_api_ones() -> None:
    work = ("projector", "dispatcher")
    assert role_groups(2, 2) == [("api", "connectors"), work, work]
    assert role_groups(3, 3) == [("api", "connectors")] * 2 + [work] * 3


def test_dispatch_processes_add_dispatcher_children_after_the_work_ones() -> None:
    work, dispatch = ("projector", "dispatcher"), ("dispatcher",)
    assert role_groups(2, 1, 1) == [("api", "connectors"), work, dispatch]
    assert role_groups(3, 2, 2) == [("api", "connectors")] * 2 + [work] * 2 + [dispatch] * 2


def test_work_processes_run_ten_steps_below_the_api_by_default_and_as_koppelhub_work_nice_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KOPPELHUB_WORK_NICE", raising=False)
    assert Settings().work_nice == 10
    monkeypatch.setenv("KOPPELHUB_WORK_NICE", "0")
    assert Settings().work_nice == 0
    for refused in ("-1", "20"):  # a raised priority needs privileges; 19 is the lowest there is
        monkeypatch.setenv("KOPPELHUB_WORK_NICE", refused)
        with pytest.raises(ValidationError, match="work_nice"):
            Settings()
