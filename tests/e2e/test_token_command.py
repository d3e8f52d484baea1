"""``koppelhub token create|list|revoke`` from a terminal, on the hub's database: the token it
prints works against the API, the list never shows a secret, a revoked token is refused, and
both changes are in the audit trail, naming the operating-system user who ran the command."""

from __future__ import annotations

import json

import httpx
import pytest

from hub.cli_actor import os_user
from hub.settings import Settings
from tests.e2e.test_import_command import environment, koppelhub
from tests.support.hub_api import eventually

pytestmark = pytest.mark.e2e


async def test_a_token_made_on_the_command_line_works_until_it_is_revoked_there(
    settings: Settings, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    env = environment(settings)
    args = ["token", "create", "--name", "zaken", "--role", "systeem", "--organisatie", "gem-a"]
    made = koppelhub([*args, "--source", "urn:nld:gem-a:zaken"], env)
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["role"] == "systeem" and token["sources"] == ["urn:nld:gem-a:zaken"]
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert (await client.get("/api/v1/gebruik", headers=bearer)).status_code == 200

    listed = koppelhub(["token", "list"], env)
    assert [t["id"] for t in json.loads(listed.stdout)] == [token["id"]]
    assert token["token"] not in listed.stdout

    refused = koppelhub(["token", "create", "--name", "x", "--role", "gebruik-beheerder"], env)
    assert refused.returncode == 1 and "organisatie" in refused.stderr

    assert koppelhub(["token", "revoke", token["id"]], env).returncode == 0

    async def refused_now() -> bool:
        return (await client.get("/api/v1/gebruik", headers=bearer)).status_code == 401

    await eventually(refused_now, timeout=5, what="the revoked token refused")
    target = {"target": f"/api/v1/tokens/{token['id']}"}
    trail = await client.get("/api/v1/audit", params=target, headers=auth)
    assert [(e["action"], e["changes"]) for e in trail.json()["items"]] == [
        ("koppelhub token revoke", []),
        ("koppelhub token create", ["name", "role", "organisatie", "sources"]),
    ]
    operator = {"name": "cli", "role": "functioneel-beheerder", "organisatie": None,
                "credential": f"cli:{os_user()}"}  # fmt: skip
    assert all(e["actor"] == operator for e in trail.json()["items"])  # the OS user who ran it
    assert token["token"] not in trail.text
