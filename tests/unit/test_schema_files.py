"""The committed JSON Schema files match the pydantic models that generate them."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.envelope import CloudEvent
from schemas.generate import JSON_DIR, REGISTRY, main, render, stale_files, write_all


def test_committed_schema_files_are_up_to_date() -> None:
    problems = stale_files()
    assert not problems, f"{problems}: run `python -m schemas.generate`"


def test_check_mode_exits_zero_when_files_are_current() -> None:
    assert main(["--check"]) == 0


def test_every_registered_model_has_a_schema_file() -> None:
    for name in REGISTRY:
        schema = json.loads((JSON_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_check_mode_fails_on_a_stale_missing_or_orphaned_file(tmp_path: Path) -> None:
    class Other(BaseModel):
        naam: str

    registry: dict[str, type[BaseModel]] = {"cloudevent": CloudEvent, "other": Other}
    assert write_all(tmp_path, registry) == [
        tmp_path / "cloudevent.schema.json",
        tmp_path / "other.schema.json",
    ]
    assert stale_files(tmp_path, registry) == []
    assert write_all(tmp_path, registry) == []

    (tmp_path / "cloudevent.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "other.schema.json").unlink()
    (tmp_path / "orphan.json").write_text("{}\n", encoding="utf-8")
    assert stale_files(tmp_path, registry) == [
        "cloudevent.schema.json: stale",
        "other.schema.json: missing",
        "orphan.json: no model in schemas.generate.REGISTRY",
    ]
    assert main(["--check", "--dir", str(tmp_path)]) == 1


def test_rendering_is_deterministic_with_sorted_keys_and_trailing_newline() -> None:
    text = render(CloudEvent)
    assert text == render(CloudEvent)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert list(json.loads(text)) == sorted(json.loads(text))
