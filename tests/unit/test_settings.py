"""Settings: flat KOPPELHUB_* names, comma-separated lists, and a README that lists them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from hub.settings import ConnectorSettings, DeliverySettings, KafkaSettings, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def environment_names() -> list[str]:
    names = []
    for model in (Settings, KafkaSettings, DeliverySettings, ConnectorSettings):
        prefix = model.model_config.get("env_prefix", "")
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
                continue  # a nested group; its own fields are listed under its prefix
            names.append(f"{prefix}{name}".upper())
    return names


def settings_table() -> set[str]:
    """The names in the first column of the README's "Settings" table."""
    section = README.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z0-9_]+)`", cell)}


def test_every_setting_is_in_the_readmes_settings_table_and_every_name_there_is_a_setting() -> None:
    names, listed = set(environment_names()), settings_table()
    assert sorted(names - listed) == []
    assert sorted(n for n in listed - names if n.startswith("KOPPELHUB_")) == []


def test_settings_come_from_flat_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPELHUB_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("KOPPELHUB_DELIVERY_RETRY_SCHEDULE", "1, 2.5,10")
    monkeypatch.setenv("KOPPELHUB_DELIVERY_ALLOW_NETWORKS", "10.0.0.0/8,192.168.1.0/24")
    monkeypatch.setenv("KOPPELHUB_HTTP_PORT", "9090")
    settings = Settings()
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.delivery.retry_schedule == [1.0, 2.5, 10.0]
    assert settings.delivery.allow_networks == ["10.0.0.0/8", "192.168.1.0/24"]
    assert settings.http_port == 9090


def test_the_default_retry_schedule_spans_about_two_days() -> None:
    total = sum(Settings().delivery.retry_schedule)
    assert 40 * 3600 <= total <= 52 * 3600


def test_a_lease_shorter_than_one_attempt_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPELHUB_DELIVERY_LEASE_SECONDS", "10")
    monkeypatch.setenv("KOPPELHUB_DELIVERY_TIMEOUT_SECONDS", "15")
    with pytest.raises(ValueError, match="LEASE_SECONDS"):
        Settings()
