"""Set-up hygiene (issue 11): `make run` installs what running needs only, and the package
metadata uses the current licence form (no setuptools deprecation warning at install)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_installs_the_project_without_its_test_extras(tmp_path: Path) -> None:
    # Under `make test` this is a nested make: without the parent's MAKE* variables and with
    # --no-print-directory, the plan is the same as from a shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    plan = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout

    installs = [line for line in plan.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("[test]" not in line for line in installs), plan
    assert plan.rstrip().endswith("koppelhub run")


def test_the_licence_is_an_spdx_expression_with_a_backend_that_reads_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert project["project"]["license"] == "EUPL-1.2"
    [setuptools] = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"  # the first to read PEP 639 licence expressions
