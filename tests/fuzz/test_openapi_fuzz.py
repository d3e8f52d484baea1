"""schemathesis against the live OpenAPI document, with the admin token: no 5xx, ever.

Bounded for `make test` (schemathesis's deterministic mode: the same ~9,000 cases every run,
about a minute); ``make fuzz`` sets ``KOPPELHUB_FUZZ_EXAMPLES`` (and ``KOPPELHUB_FUZZ_SEED``)
for a long, seeded random run. The hub is the real
API on the session's embedded broker and a fresh database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_write_ahead import running

pytestmark = pytest.mark.e2e

#: `make fuzz` sets these; unset: the bounded, deterministic run of `make test` (about a minute).
EXAMPLES = os.environ.get("KOPPELHUB_FUZZ_EXAMPLES")
SEED = os.environ.get("KOPPELHUB_FUZZ_SEED", "16")
#: No 5xx, every response (problem documents included) valid against its own schema and
#: content type. Undocumented status codes (a 404 or 400 the document does not list) are the
#: API documentation's business (issue 11), not checked here.
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def test_no_operation_answers_a_server_error_to_generated_requests(settings: Settings) -> None:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a test dependency (pip install -e '.[test]')"
    async with running(settings, ("api",)) as client:
        base = str(client.base_url).rstrip("/")
        proc = await asyncio.create_subprocess_exec(
            binary,
            "run",
            f"{base}/openapi.json",
            "--url",
            base,
            "-H",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks",
            CHECKS,
            *(["--max-examples", EXAMPLES, "--seed", SEED] if EXAMPLES else ["--generation-deterministic"]),
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    # A failed check is listed under "Failures:". schemathesis may also report that it could
    # not generate data for a schema (an "ERRORS" section, e.g. "Cannot generate an array with
    # 1 demanded elements" for POST /subscriptions under load): a limit of the generator, not
    # an answer of the hub, so it does not fail this test.
    assert "Failures:" not in text, text[-12000:]
    assert proc.returncode == 0 or "Schema Error" in text, text[-12000:]
    assert " generated, " in text, text[-3000:]
