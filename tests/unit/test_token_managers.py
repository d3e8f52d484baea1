"""Who manages which token (hub/services/tokens.py): tokens beheren is "own (roles …)", so a
token manager lists and revokes only the tokens it could have created, not every token of its
organisation."""

from __future__ import annotations

import pytest

from hub.adapters.memory import InMemoryTokenStore
from hub.api.auth import ADMIN
from hub.errors import NotFound
from hub.services.access import Principal, Role
from hub.services.tokens import TokenService


async def _tokens(service: TokenService) -> dict[str, object]:
    made = {}
    for name, role, org, sources in [
        ("gb", "gebruik-beheerder", "gem-a", []),
        ("gr", "gebruik-raadpleger", "gem-a", []),
        ("ab", "aanbod-beheerder", "gem-a", []),
        ("fb-a", "functioneel-beheerder", "gem-a", []),
        ("sy", "systeem", "gem-a", ["urn:gem-a"]),
        ("gb-b", "gebruik-beheerder", "gem-b", []),
    ]:
        record, _ = await service.create(ADMIN, name=name, role=role, organisatie=org, sources=sources)
        made[name] = record
    return made


@pytest.mark.parametrize(
    ("role", "listed"),
    [
        (Role.GEBRUIK_BEHEERDER, {"gb", "gr", "sy"}),
        (Role.AANBOD_BEHEERDER, {"ab", "sy"}),
    ],
)
async def test_a_token_manager_lists_only_the_roles_it_may_hand_out_of_its_own_organisation(
    role: Role, listed: set[str]
) -> None:
    service = TokenService(InMemoryTokenStore(), landscape=None)
    await _tokens(service)
    manager = Principal("beheer", role, "gem-a", credential="m")

    assert {t.name for t in await service.list(manager)} == listed
    assert {t.name for t in await service.list(ADMIN)} == {"gb", "gr", "ab", "fb-a", "sy", "gb-b"}


async def test_a_token_manager_cannot_revoke_a_token_of_a_role_it_may_not_hand_out() -> None:
    service = TokenService(InMemoryTokenStore(), landscape=None)
    made = await _tokens(service)
    aanbod = Principal("aanbod", Role.AANBOD_BEHEERDER, "gem-a", credential="m")
    gebruik = Principal("gebruik", Role.GEBRUIK_BEHEERDER, "gem-a", credential="m")

    for victim in ("gb", "fb-a", "gb-b"):
        with pytest.raises(NotFound):
            await service.revoke(aanbod, made[victim].id)  # type: ignore[attr-defined]
    for victim in ("ab", "fb-a"):
        with pytest.raises(NotFound):
            await service.revoke(gebruik, made[victim].id)  # type: ignore[attr-defined]

    await service.revoke(aanbod, made["sy"].id)  # type: ignore[attr-defined]
    await service.revoke(gebruik, made["gr"].id)  # type: ignore[attr-defined]
    assert {t.name for t in await service.list(ADMIN) if t.revoked_at is None} == {"gb", "ab", "fb-a", "gb-b"}
