"""The authorisation matrix, every role x action, each for the caller's own organisation and
for another (issue 12's table, written out here independently of hub.services.access)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.services.access import (
    VISITOR,
    Action,
    Principal,
    Role,
    listed_organisation,
    matrix_table,
    may,
    may_at_all,
    may_grant,
    may_publish_source,
    may_pull,
    pull_recipient,
)

OWN, OTHER = "gem-a", "gem-b"

# Per action: the roles allowed for their own organisation, and those allowed for another too.
# (✅ all → both sets; ✅ own → only the first; ❌ → neither.)
ROLES = [r.value for r in Role]
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "externe-koppelingen-beheren": (
        {"functioneel-beheerder", "gebruik-beheerder"},
        {"functioneel-beheerder"},
    ),
    "tokens-beheren": (
        {"functioneel-beheerder", "gebruik-beheerder", "aanbod-beheerder"},
        {"functioneel-beheerder"},
    ),
    "gebruik-vastleggen": (
        {"functioneel-beheerder", "gebruik-beheerder", "systeem"},
        {"functioneel-beheerder"},
    ),
    "aanbod-vastleggen": (
        {"functioneel-beheerder", "gebruik-beheerder", "aanbod-beheerder", "systeem"},
        {"functioneel-beheerder"},
    ),
    "gemma-vastleggen": ({"functioneel-beheerder"}, {"functioneel-beheerder"}),
    "landschap-raadplegen": (set(ROLES) - {"bezoeker", "federatie"}, set(ROLES) - {"bezoeker", "federatie"}),
    "private-velden-raadplegen": (
        {"functioneel-beheerder", "gebruik-beheerder", "gebruik-raadpleger"},
        {"functioneel-beheerder"},
    ),
    "hub-beheren": ({"functioneel-beheerder"}, {"functioneel-beheerder"}),
    "audit-raadplegen": ({"functioneel-beheerder", "gebruik-beheerder"}, {"functioneel-beheerder"}),
    "events-ophalen": ({"functioneel-beheerder", "gebruik-beheerder"}, {"functioneel-beheerder"}),
}
#: Rights that name objects, not organisations (the token lists them): never by organisation,
#: but held "at all" (the route is open to the role; the object decides).
GRANTED: dict[str, set[str]] = {"events-ophalen": {"federatie"}}

CASES = [(role, action, target) for action in EXPECTED for role in ROLES for target in ("own", "other")]


def test_the_expected_table_names_every_action_of_the_matrix() -> None:
    assert set(EXPECTED) == {a.value for a in Action}


@pytest.mark.parametrize(("role", "action", "target"), CASES)
def test_every_role_and_action_for_its_own_and_another_organisation(
    role: str, action: str, target: str
) -> None:
    principal = Principal("caller", Role(role), OWN, sources=("urn:sys",))
    own_ok, other_ok = EXPECTED[action]
    allowed = own_ok if target == "own" else other_ok
    organisation = OWN if target == "own" else OTHER
    assert may(principal, Action(action), organisation) is (role in allowed)
    assert may_at_all(principal, Action(action)) is (role in own_ok | GRANTED.get(action, set()))


def test_bezoeker_reads_the_landscape_only_when_public_read_is_on() -> None:
    bezoeker = Principal("anon", Role.BEZOEKER, None)
    assert not may(bezoeker, Action.READ_LANDSCAPE, OWN)
    assert may(bezoeker, Action.READ_LANDSCAPE, OWN, public_read=True)
    assert not may(bezoeker, Action.READ_PRIVATE, OWN, public_read=True)


def test_a_right_for_own_organisation_never_reaches_hub_wide_objects() -> None:
    beheerder = Principal("b", Role.GEBRUIK_BEHEERDER, OWN)
    assert not may(beheerder, Action.MANAGE_KOPPELINGEN, None)
    assert may(Principal("admin"), Action.MANAGE_KOPPELINGEN, None)


def test_a_list_shows_one_organisation_and_never_everything_to_one_without_an_organisation() -> None:
    manage = Action.MANAGE_KOPPELINGEN
    admin, beheerder = Principal("admin"), Principal("b", Role.GEBRUIK_BEHEERDER, OWN)
    assert (listed_organisation(admin, manage), listed_organisation(admin, manage, OTHER)) == (None, OTHER)
    assert listed_organisation(beheerder, manage) == listed_organisation(beheerder, manage, OWN) == OWN
    assert listed_organisation(beheerder, manage, OTHER) == ""  # another's: nothing, not its own
    # A credential that should not exist (the token service and the OIDC check refuse it):
    assert listed_organisation(Principal("x", Role.GEBRUIK_BEHEERDER, None), manage) == ""


@pytest.mark.parametrize(
    ("granter", "role", "allowed"),
    [
        (Role.GEBRUIK_BEHEERDER, Role.GEBRUIK_RAADPLEGER, True),
        (Role.GEBRUIK_BEHEERDER, Role.SYSTEEM, True),
        (Role.GEBRUIK_BEHEERDER, Role.AANBOD_BEHEERDER, False),
        (Role.GEBRUIK_BEHEERDER, Role.FUNCTIONEEL_BEHEERDER, False),
        (Role.AANBOD_BEHEERDER, Role.AANBOD_BEHEERDER, True),
        (Role.AANBOD_BEHEERDER, Role.SYSTEEM, True),
        (Role.AANBOD_BEHEERDER, Role.GEBRUIK_BEHEERDER, False),
        (Role.GEBRUIK_RAADPLEGER, Role.GEBRUIK_RAADPLEGER, False),
        (Role.FUNCTIONEEL_BEHEERDER, Role.FUNCTIONEEL_BEHEERDER, True),
    ],
)
def test_which_roles_a_token_manager_may_hand_out_for_its_own_organisation(
    granter: Role, role: Role, allowed: bool
) -> None:
    assert may_grant(Principal("m", granter, OWN), role, OWN) is allowed
    if granter is not Role.FUNCTIONEEL_BEHEERDER:
        assert not may_grant(Principal("m", granter, OWN), role, OTHER)


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("urn:nld:gem-a:sys1", True),
        ("urn:nld:gem-a:sys1:meldingen", True),
        ("urn:nld:gem-a:sys10", False),
        ("urn:nld:gem-b:sys1", False),
    ],
)
def test_a_systeem_publishes_only_for_its_registered_sources(source: str, allowed: bool) -> None:
    systeem = Principal("s", Role.SYSTEEM, OWN, sources=("urn:nld:gem-a:sys1",))
    assert may_publish_source(systeem, source) is allowed
    assert may_publish_source(Principal("admin"), source)


def test_the_readme_shows_the_matrix_as_it_is() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert matrix_table() in readme


@pytest.mark.parametrize(("role", "action", "target"), CASES)
def test_public_read_gives_a_bezoeker_the_public_landscape_and_nobody_anything_else(
    role: str, action: str, target: str
) -> None:
    """KOPPELHUB_PUBLIC_READ=true, table-driven: the bezoeker (a caller without a token) gains
    ``landschap-raadplegen`` for every organisation and nothing else; no other role changes."""
    principal = VISITOR if role == "bezoeker" else Principal("caller", Role(role), OWN, sources=("urn:sys",))
    organisation = OWN if target == "own" else OTHER
    own_ok, other_ok = EXPECTED[action]
    if role == "bezoeker":
        allowed = action == "landschap-raadplegen"
        reach = allowed
    else:
        allowed = role in (own_ok if target == "own" else other_ok)
        reach = role in own_ok | GRANTED.get(action, set())
    assert may(principal, Action(action), organisation, public_read=True) is allowed
    assert may_at_all(principal, Action(action), public_read=True) is reach


SUB, OTHER_SUB = "5f0c2b9e-1c1d-4c3e-9b7a-0a1b2c3d4e5f", "9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.mark.parametrize(("role", "owner", "allowed"), [
    ("federatie", None, True), ("federatie", OWN, True), ("federatie", OTHER, True),  # granted: any owner
    ("functioneel-beheerder", None, True), ("functioneel-beheerder", OTHER, True),
    ("gebruik-beheerder", OWN, True), ("gebruik-beheerder", None, False), ("gebruik-beheerder", OTHER, False),
    ("vng-raadpleger", None, False), ("gebruik-raadpleger", OWN, False), ("systeem", OWN, False),
    ("aanbod-beheerder", OWN, False), ("bezoeker", None, False),
])  # fmt: skip
def test_who_may_read_a_subscriptions_pull_feed(role: str, owner: str | None, allowed: bool) -> None:
    """A federatie token reads exactly the subscriptions it names (``sources``), whoever owns
    them, and no other; the other roles by their reach over the subscription's organisation."""
    principal = Principal("caller", Role(role), OWN, sources=(SUB,))
    assert may_pull(principal, SUB, owner) is allowed
    if role == "federatie":
        assert not may_pull(principal, OTHER_SUB, owner)


def test_a_federatie_reader_never_sees_an_organisations_private_fields() -> None:
    assert pull_recipient(Principal("hub-b", Role.FEDERATIE, OWN, sources=(SUB,)), OWN) is None
    assert pull_recipient(Principal("b", Role.GEBRUIK_BEHEERDER, OWN), OWN) == OWN


def test_a_federatie_token_is_handed_out_only_by_a_functioneel_beheerder() -> None:
    assert may_grant(Principal("admin"), Role.FEDERATIE, OWN)
    for granter in (Role.GEBRUIK_BEHEERDER, Role.AANBOD_BEHEERDER, Role.FEDERATIE):
        assert not may_grant(Principal("m", granter, OWN, sources=(SUB,)), Role.FEDERATIE, OWN)
