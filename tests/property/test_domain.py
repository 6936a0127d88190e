"""Property's pure rules: the transition table, pricing guards, SLA arithmetic, routing, photos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.property import domain
from services.property.domain import (
    TRANSITIONS,
    Action,
    ActionNotPermitted,
    Category,
    Role,
    Status,
    Step,
    TransitionNotAllowed,
)
from tests.property.transition_table import DECISIONS

NOON_MONDAY_LOCAL = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai, a Monday


def test_residents_cannot_do_steward_work() -> None:
    with pytest.raises(ActionNotPermitted) as info:
        domain.next_status(Status.assigned, Action.accept, Role.resident)
    assert info.value.status == 403
    assert info.value.extensions == {"ticket_status": "assigned", "action": "accept", "role": "resident"}


def test_stewards_cannot_confirm_their_own_work() -> None:
    with pytest.raises(ActionNotPermitted):
        domain.next_status(Status.completed, Action.confirm, Role.steward)


def test_a_right_held_in_the_wrong_status_is_a_state_conflict() -> None:
    with pytest.raises(TransitionNotAllowed) as info:
        domain.next_status(Status.in_progress, Action.confirm, Role.resident)
    assert info.value.status == 409
    assert info.value.extensions == {"ticket_status": "in_progress", "action": "confirm", "role": "resident"}


def test_a_caller_with_several_roles_acts_in_the_one_that_holds_the_right() -> None:
    assert domain.choose_role(["steward", "resident"], Status.in_progress, Action.confirm) == Role.resident
    assert domain.choose_role(["steward", "resident"], Status.completed, Action.confirm) == Role.resident
    assert domain.choose_role(["steward", "resident"], Status.completed, Action.accept) == Role.steward


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(Status))
def test_every_status_action_and_role_gets_the_documented_answer(status: Status, action: Action, role: Role) -> None:
    """A row's cell is the next status (`=` unchanged) or 409; a (role, action) with no row is 403."""
    expected = DECISIONS.get((status, action, role), "403")
    try:
        after = domain.next_status(status, action, role)
    except (ActionNotPermitted, TransitionNotAllowed) as refused:
        assert str(refused.status) == expected
        assert refused.extensions == {"ticket_status": status, "action": action, "role": role}
        return
    assert expected == ("=" if after == status else f"→ {after}")


def test_queue_ticket_accepted_once() -> None:
    assert domain.next_status(Status.queued, Action.accept, Role.steward) == Status.accepted
    with pytest.raises(TransitionNotAllowed):
        domain.next_status(Status.accepted, Action.accept, Role.steward)


def test_final_statuses_allow_nothing_but_feedback() -> None:
    for (source, action, _role), _target in TRANSITIONS.items():
        if source == Status.cancelled:
            pytest.fail(f"{action} allowed on a cancelled ticket")
        if source == Status.closed:
            assert action in (Action.rate, Action.follow_up)


def test_admin_reassigns_a_queue_ticket_to_assigned() -> None:
    assert domain.next_status(Status.queued, Action.reassign, Role.property_admin) == Status.assigned


def test_basic_categories_cannot_be_quoted() -> None:
    for category in domain.BASIC_CATEGORIES:
        with pytest.raises(domain.BasicServiceIsFree):
            domain.check_quote(category, 100)
    domain.check_quote(Category.service, 100)


def test_paid_work_needs_an_approved_quote() -> None:
    with pytest.raises(domain.QuoteNotApproved):
        domain.check_start(Category.service, quote_approved=False)
    domain.check_start(Category.service, quote_approved=True)
    domain.check_start(Category.repair, quote_approved=False)


def test_work_is_entered_only_by_starting_it() -> None:
    """The database's paid-work CHECK names WORK_STARTED; `check_start` guards the one way in."""
    entries = {
        action
        for (source, action, _), target in TRANSITIONS.items()
        if target in domain.WORK_STARTED and source not in domain.WORK_STARTED
    }
    assert entries == {Action.start}


def test_choose_role_prefers_the_role_the_table_allows() -> None:
    assert domain.choose_role({"resident", "steward"}, Status.completed, Action.confirm) == Role.resident
    assert domain.choose_role({"resident", "steward"}, Status.assigned, Action.accept) == Role.steward
    assert domain.choose_role({"resident"}, Status.assigned, Action.accept) == Role.resident


def test_routing_prefers_steward_then_backup_then_queue() -> None:
    assert domain.route_ticket("s", True, "b", True) == domain.Route("s", Status.assigned, "steward")
    assert domain.route_ticket("s", False, "b", True) == domain.Route("b", Status.assigned, "backup")
    assert domain.route_ticket("s", False, "b", False) == domain.Route(None, Status.queued, "queue")
    assert domain.route_ticket(None, False, None, False).status == Status.queued


def test_on_duty_uses_local_time() -> None:
    monday_noon = [domain.Shift(0, 11 * 60, 13 * 60)]
    assert domain.on_duty(monday_noon, NOON_MONDAY_LOCAL)
    assert not domain.on_duty(monday_noon, NOON_MONDAY_LOCAL + timedelta(hours=2))
    assert not domain.on_duty([domain.Shift(1, 0, 1440)], NOON_MONDAY_LOCAL)


def test_pause_moves_the_resolution_deadline_by_its_length() -> None:
    due = NOON_MONDAY_LOCAL + timedelta(hours=4)
    paused = NOON_MONDAY_LOCAL + timedelta(hours=1)
    resumed = paused + timedelta(minutes=95)
    assert domain.resumed_deadline(due, paused, resumed) == due + timedelta(minutes=95)


def test_deadlines_follow_the_policy() -> None:
    response, resolution = domain.deadlines(NOON_MONDAY_LOCAL, domain.SlaPolicy(10, 240))
    assert (response - NOON_MONDAY_LOCAL, resolution - NOON_MONDAY_LOCAL) == (timedelta(minutes=10), timedelta(hours=4))


def test_queue_deadline_is_response_until_someone_responds() -> None:
    a, b = NOON_MONDAY_LOCAL, NOON_MONDAY_LOCAL + timedelta(hours=1)
    assert domain.queue_deadline(Status.queued, a, b) == a
    assert domain.queue_deadline(Status.in_progress, a, b) == b


@given(st.integers(min_value=1, max_value=10_000_000), st.integers(min_value=1, max_value=1000))
def test_points_never_pay_less_than_the_price(amount: int, fen_per_point: int) -> None:
    points = domain.points_for(amount, fen_per_point)
    assert points * fen_per_point >= amount > (points - 1) * fen_per_point


def test_sniff_image_by_magic_bytes() -> None:
    assert domain.sniff_image(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert domain.sniff_image(b"\x89PNG\r\n\x1a\nxxxx") == "image/png"
    assert domain.sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert domain.sniff_image(b"GIF89a") is None
    assert domain.sniff_image(b"<svg xmlns=") is None


def test_replay_rejects_a_step_outside_the_table() -> None:
    steps = [
        Step(Action.submit, Role.resident, None, Status.assigned),
        Step(Action.start, Role.steward, Status.assigned, Status.in_progress),
    ]
    with pytest.raises(domain.TrailBroken):
        domain.replay(steps)


def test_replay_rejects_a_broken_link() -> None:
    steps = [
        Step(Action.submit, Role.resident, None, Status.assigned),
        Step(Action.start, Role.steward, Status.accepted, Status.in_progress),
    ]
    with pytest.raises(domain.TrailBroken):
        domain.replay(steps)


ACTIONS = [a for a in Action if a != Action.submit]
ROLES = list(Role)


@settings(max_examples=300)
@given(
    st.sampled_from([Status.assigned, Status.queued]),
    st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(ROLES)), max_size=40),
)
def test_random_sequences_only_follow_the_table(start: Status, attempts: list[tuple[Action, Role]]) -> None:
    status = start
    trail = [Step(Action.submit, Role.resident, None, start)]
    for action, role in attempts:
        try:
            after = domain.next_status(status, action, role)
        except (ActionNotPermitted, TransitionNotAllowed) as refused:
            assert (status, action, role) not in TRANSITIONS
            assert refused.extensions["ticket_status"] == status
            continue
        assert TRANSITIONS[status, action, role] == after
        trail.append(Step(action, role, status, after))
        status = after
    assert domain.replay(trail) == status
