"""A cursor comes back from the client: the kit reads its sort key back typed, and any other shape
is the invalid-cursor problem (400), never a value of the wrong type in a query."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Integer, Text, column, select, table
from sqlalchemy.dialects import postgresql

from services.kit.pagination import InvalidCursor, PageParams, after_key_condition, encode_cursor

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ID = uuid.UUID("6f1c2b9e-0d0e-4b51-9d38-4f8a9a6a1c11")


def page(values: list[Any]) -> PageParams:
    return PageParams(limit=20, cursor=encode_cursor(values))


@pytest.mark.parametrize(
    ("values", "kinds", "expected"),
    [
        ([AT.isoformat(), str(ID)], (datetime, uuid.UUID), (AT, ID)),
        (["b1", "door-1"], (str, str), ("b1", "door-1")),
        ([42], (int,), (42,)),
        ([None, 7], (datetime | None, int), (None, 7)),
        ([AT.isoformat(), 7], (datetime | None, int), (AT, 7)),
    ],
)
def test_a_cursor_of_the_lists_shape_reads_back_typed(
    values: list[Any], kinds: tuple[Any, ...], expected: tuple[Any, ...]
) -> None:
    assert page(values).after_key(*kinds) == expected


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        (["x"], (datetime, uuid.UUID)),  # another list's length
        ([AT.isoformat(), "not-a-uuid"], (datetime, uuid.UUID)),
        (["2026-12-05T12:00:00", str(ID)], (datetime, uuid.UUID)),  # naive: no instant
        (["yesterday", str(ID)], (datetime, uuid.UUID)),
        ([True], (int,)),
        (["42"], (int,)),
        ([2**63], (int,)),  # beyond bigint
        ([1.5], (int,)),
        ([5], (str,)),
        ([None, 7], (datetime, int)),  # null where the column is not nullable
        ([[1], 7], (datetime | None, int)),
    ],
)
def test_any_other_cursor_is_the_invalid_cursor_problem(values: list[Any], kinds: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidCursor):
        page(values).after_key(*kinds)


def test_the_first_page_has_no_key() -> None:
    assert PageParams(limit=20, cursor=None).after_key(str) is None


def test_the_keyset_condition_is_one_row_comparison_in_the_sort_direction() -> None:
    t = table("t", column("a", Integer), column("b", Text))
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    ascending = str(select(t.c.a).where(after_key_condition([t.c.a, t.c.b], (1, "x"))).compile(dialect=dialect))
    descending = str(select(t.c.a).where(after_key_condition([t.c.a, t.c.b], (1, "x"), descending=True)).compile(dialect=dialect))
    assert "(t.a, t.b) > (" in ascending and "(t.a, t.b) < (" in descending
