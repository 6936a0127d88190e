"""The ingestion route reads a batch with `INCOMING_ACCESS_BATCH` (the input policy as field types,
checked without Python per field) while `AccessBatch` (a kit `RequestBody`) is the documented body:
the same bodies must get the same answer from both, refused at the same fields or accepted as the
same values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.security.schemas import INCOMING_ACCESS_BATCH, AccessBatch, AccessReport
from tests.security.conftest import Community, access

FIELDS = list(AccessReport.model_fields)
FORBIDDEN = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff"]
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    1.0,
    178.0,
    "",
    " ",
    "a",
    "e-1",
    "in",
    "out",
    "activity",
    "IN",
    "card",
    "face",
    "pass",
    "plate",
    "浙K12345",
    "浙K1234\n",
    "浙K1234\t",
    "x" * 64,
    "x" * 65,
    "y" * 1001,
    "2026-12-06T09:00:00+08:00",
    "2026-12-06T09:00:00Z",
    "2026-12-06T09:00:00",
    "1999-12-31T23:59:59Z",
    "2000-01-01T00:00:00+08:00",
    "2099-12-31T23:59:59-12:00",
    "2100-01-01T00:00:00Z",
    "0001-01-01T07:00:00+08:00",
    "9999-12-31T23:59:59-12:00",
    1764982800,
    "1764982800",
    [],
    ["a"],
    {},
    {"x": 1},
    *(f"ab{c}cdef" for c in FORBIDDEN),
]


def answer(body: Any) -> tuple[str, Any]:
    """What each reader makes of a body: the values it accepts (the same shape for both), or the
    sorted locations of the fields it refuses."""
    try:
        full = AccessBatch.model_validate(body)
        full_answer: tuple[str, Any] = ("accepted", [{f: getattr(e, f) for f in FIELDS} for e in full.events])
    except ValidationError as error:
        full_answer = ("refused", sorted({e["loc"] for e in error.errors()}))
    try:
        lean = INCOMING_ACCESS_BATCH.validate_python(body)
        lean_answer: tuple[str, Any] = ("accepted", [{f: e.get(f) for f in FIELDS} for e in lean["events"]])
    except ValidationError as error:
        lean_answer = ("refused", sorted({e["loc"] for e in error.errors()}))
    assert lean_answer == full_answer, body
    return full_answer


def event(**changes: Any) -> dict[str, Any]:
    return {**access("e-1", at=datetime(2026, 12, 6, 1, tzinfo=UTC), credential_id="card-7f3a"), **changes}


@pytest.mark.parametrize("field", [*FIELDS, "household_id"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_each_field_gets_the_same_answer_from_both_readers(field: str, value: Any) -> None:
    answer({"events": [event(**{field: value})]})


@pytest.mark.parametrize("field", FIELDS)
def test_a_field_left_out_gets_the_same_answer_from_both_readers(field: str) -> None:
    body = event()
    body.pop(field, None)
    answer({"events": [body]})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"events": []},
        {"events": None},
        {"events": "e-1"},
        {"events": [event()] * 1000},
        {"events": [event()] * 1001},
        {"events": [event()], "device_id": "door-1"},
        {"events": [event(), "e-2"]},
        [event()],
        None,
    ],
    ids=repr,
)
def test_the_batch_itself_gets_the_same_answer_from_both_readers(body: Any) -> None:
    answer(body)


def test_the_readers_accept_a_well_formed_batch_and_refuse_control_characters() -> None:
    """The comparison above is not vacuous: both accept the usual batch and refuse a NUL."""
    assert answer({"events": [event(plate="浙K12345")]})[0] == "accepted"
    assert answer({"events": [event(plate="浙K\x0012345")]}) == ("refused", [("events", 0, "plate")])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(changes=st.dictionaries(st.sampled_from([*FIELDS, "extra"]), json_values | st.sampled_from(ODD_VALUES), max_size=3))
def test_any_event_gets_the_same_answer_from_both_readers(changes: dict[str, Any]) -> None:
    answer({"events": [event(**changes)]})


async def test_a_bad_event_is_a_422_problem_naming_its_field_and_nothing_is_stored(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    events = [access("e-1"), access("e-2", plate="浙K\x0012345")]
    r = await c.client.post("/access-events", json={"events": events}, headers=door)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["events.1.plate"]
    stored = await c.rows("SELECT count(*) AS n FROM access_events WHERE community = :community")
    assert stored[0].n == 0


async def test_an_optional_field_only_some_events_carry_is_stored_on_those_events(community: Community) -> None:
    """A column no event of the batch has is sent as NULL: the others keep their values, in order."""
    c = community
    gate = await c.device("gate-1", kind="gate")
    events = [access("e1"), access("e2"), access("e3", credential_kind="plate", plate="浙K12345")]
    assert (await c.client.post("/access-events", json={"events": events}, headers=gate)).json()["stored"] == 3
    rows = await c.rows(
        "SELECT device_event_id, credential_id, pass_id, plate FROM access_events WHERE community = :community"
        " ORDER BY device_event_id"
    )
    assert [(r.device_event_id, r.credential_id, r.pass_id, r.plate) for r in rows] == [
        ("e1", None, None, None),
        ("e2", None, None, None),
        ("e3", None, None, "浙K12345"),
    ]
