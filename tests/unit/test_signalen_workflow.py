"""Signalen's workflow table and the path planner (connectors.signalen.workflow)."""

from __future__ import annotations

import pytest

from connectors.signalen.workflow import (
    ALLOWED_STATUS_CHANGES,
    STATE_DISPLAY,
    Plan,
    Refusal,
    plan,
)


def test_the_table_has_every_state_of_signalen_and_only_known_targets() -> None:
    assert set(ALLOWED_STATUS_CHANGES) == set(STATE_DISPLAY) | {""}
    for targets in ALLOWED_STATUS_CHANGES.values():
        assert set(targets) <= set(STATE_DISPLAY)


def test_the_table_keeps_signalens_quirks() -> None:
    # Spot checks against Amsterdam/signals workflow.py (DOMAIN.md §6 has the same table).
    assert "closure requested" not in ALLOWED_STATUS_CHANGES["m"]
    assert ALLOWED_STATUS_CHANGES["h"] == ("ingepland", "a")
    assert ALLOWED_STATUS_CHANGES["s"] == ()
    assert set(ALLOWED_STATUS_CHANGES["o"]) == {"reopened", "reopen requested"}
    assert "b" in ALLOWED_STATUS_CHANGES["a"]


def test_an_allowed_transition_is_one_step() -> None:
    assert plan("m", "i", text="x") == Plan(("i",))
    assert plan("i", "closure requested", text=None) == Plan(("closure requested",))


def test_a_forbidden_transition_goes_through_i_first() -> None:
    assert plan("m", "closure requested", text="klaar") == Plan(("i", "closure requested"))


def test_on_hold_goes_through_ingepland() -> None:
    assert plan("h", "closure requested", text=None) == Plan(("ingepland", "closure requested"))


def test_ties_prefer_i_then_b_then_ingepland() -> None:
    # reaction requested → closure requested: via i, b or ingepland; i wins.
    assert plan("reaction requested", "closure requested", text=None) == Plan(("i", "closure requested"))
    # h → b: only via ingepland.
    assert plan("h", "b", text=None) == Plan(("ingepland", "b"))


def test_same_state_and_text_needs_no_patch() -> None:
    assert plan("i", "i", text="bezig", current_text="bezig") == Plan(())


def test_same_state_other_text_is_patched_when_allowed() -> None:
    assert plan("i", "i", text="nieuw", current_text="oud") == Plan(("i",))


@pytest.mark.parametrize("closed", ["o", "a", "s"])
def test_closed_meldingen_are_refused(closed: str) -> None:
    outcome = plan(closed, "b", text="weer open")
    assert isinstance(outcome, Refusal)
    assert "closed" in outcome.reason


def test_a_closed_melding_already_as_requested_is_not_refused() -> None:
    assert plan("o", "o", text="klaar", current_text="klaar") == Plan(())


@pytest.mark.parametrize("state", ["o", "reopened"])
def test_text_is_required_for_afgehandeld_and_reopened(state: str) -> None:
    outcome = plan("b", state, text="  ")
    assert isinstance(outcome, Refusal)
    assert "text is required" in outcome.reason
    assert plan("b", "o", text="opgelost") == Plan(("o",))


def test_unreachable_state_is_refused_with_reason() -> None:
    outcome = plan("m", "h", text=None)  # nothing leads to on hold
    assert isinstance(outcome, Refusal)
    assert "does not lead" in outcome.reason


@pytest.mark.parametrize("state", ["sent", "ready to send", "forward to external", "s", "bogus"])
def test_states_a_request_cannot_carry_are_refused(state: str) -> None:
    assert isinstance(plan("m", state, text="t"), Refusal)


def test_unknown_current_state_is_refused() -> None:
    assert isinstance(plan("weird", "i", text=None), Refusal)


def test_every_plan_is_a_walk_signalen_accepts() -> None:
    for current in ALLOWED_STATUS_CHANGES:
        for requested in STATE_DISPLAY:
            outcome = plan(current, requested, text="t")
            if isinstance(outcome, Plan):
                state = current
                for step in outcome.steps:
                    assert step in ALLOWED_STATUS_CHANGES[state], (current, requested, outcome)
                    state = step
                assert state == requested or not outcome.steps
                assert all(s in ("i", "b", "ingepland") for s in outcome.steps[:-1])
