"""`koppelhub import FILE` from a terminal: a summary, invalid rows listed, exit 3 when some were
invalid, nothing published again on a re-import, and a refusal to publish into a broker that
would stop with the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.support.connectors import GEBRUIK_HEADER, ORG, harness, write_csv

pytestmark = pytest.mark.e2e


def koppelhub(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    assert settings.kafka.bootstrap and settings.database_url
    return env | {
        "KOPPELHUB_DATA_DIR": str(settings.data_dir),
        "KOPPELHUB_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "KOPPELHUB_KAFKA_TOPIC": settings.kafka.topic,
        "KOPPELHUB_KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic,
        "KOPPELHUB_DATABASE_URL": settings.database_url,
        "KOPPELHUB_LOG_LEVEL": "warning",
    }


async def test_the_import_command_reports_invalid_rows_and_exits_3(
    settings: Settings, tmp_path: Path
) -> None:
    rows = [[f"g-{i}", ORG, f"app-{i}", "In productie", "1.0", ""] for i in range(5)]
    rows[2][3] = "Kapot"
    path = write_csv(tmp_path / "gebruik.csv", [GEBRUIK_HEADER, *rows])
    env = environment(settings)
    args = ["import", str(path), "--objecttype", "gebruik", "--organisatie", ORG]

    first = koppelhub(args, env)
    again = koppelhub(args, env)
    async with harness(settings) as h:
        events = await h.events()

    assert first.returncode == 3, first.stderr
    assert "Read 5 rows: 4 published, 0 unchanged, 1 invalid, 0 withdrawn." in first.stdout
    assert "row 4, status: must be one of" in first.stderr
    assert "Read 5 rows: 0 published, 4 unchanged, 1 invalid" in again.stdout
    assert len(events) == 4


async def test_a_clean_file_exits_0_and_a_broken_one_exits_1(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings)
    good = write_csv(tmp_path / "a.csv", [["id", "naam"], ["a-1", "Zaaksysteem"]])
    bad = write_csv(tmp_path / "b.csv", [["id", "kleur"], ["a-1", "rood"]])

    ok = koppelhub(["import", str(good), "--objecttype", "applicatie", "--organisatie", ORG], env)
    broken = koppelhub(["import", str(bad), "--objecttype", "applicatie", "--organisatie", ORG], env)

    assert ok.returncode == 0, ok.stderr
    assert "applicatie: found 1, created 1" in ok.stdout
    # The header error names the position, never what the file said (it quotes nothing it read).
    assert broken.returncode == 1 and "unknown column(s), at position(s) 2" in broken.stderr, broken.stderr


def test_without_a_running_hub_the_command_will_not_publish_into_a_throwaway_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    env |= {"KOPPELHUB_DATA_DIR": str(tmp_path / "data"), "KOPPELHUB_DATABASE_URL": "postgresql://unused/x"}
    path = write_csv(tmp_path / "a.csv", [["id", "naam"], ["a-1", "Zaaksysteem"]])

    result = koppelhub(["import", str(path), "--objecttype", "applicatie", "--organisatie", ORG], env)

    assert result.returncode == 1
    assert "Start `koppelhub run` first" in result.stderr
