"""What a request may carry: one policy for every request body and query parameter of every service.

A request body model subclasses `RequestBody`:

    class TicketCreate(RequestBody):
        model_config = ConfigDict(json_schema_extra={"examples": [{"category": "repair", "description": "水龙头漏水"}]})
        category: Annotated[Category, FromText]
        description: Annotated[str, Field(min_length=1, max_length=2000)]
        preferred_time: Timestamp | None = None

and refuses, as a 422 problem naming the field: fields it does not declare (a misspelt or
server-owned field is an error, not silently dropped); a bool where a number is expected or a
number where text is (strict types); text with NUL, other control characters (newline and tab
excepted) or lone surrogates, which PostgreSQL cannot store or a log line cannot show; text longer
than its field allows (`TEXT_MAX_LENGTH` when the field says nothing); timestamps without an
explicit offset or outside 2000-01-01..2100-01-01, and dates and months outside those years, before
any of them reaches a query.

Strict types take JSON's own types only, so the types JSON carries as strings (UUIDs, dates,
times, enumerations) are annotated `FromText`, or use the aliases here. A whole number written with
a zero fraction (`178.0`) is the integer JSON Schema says it is, and is taken as one.

The document says what the policy refuses, so a client generated from it, or a fuzzer, knows: every
free-text string of a body (and `Text` parameters) carries `PRINTABLE_PATTERN`.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
TEXT_MAX_LENGTH = 1000
"""The longest text a field takes when it names no bound of its own."""

FromText = Strict(False)
"""For a strict model's field whose value JSON carries as a string (a UUID, a date, an enumeration)."""

_ALLOWED_CONTROLS = frozenset("\n\t")

PRINTABLE_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"
"""`printable_text`'s rule as a JSON Schema pattern (lone surrogates, which JSON text cannot carry
as characters, are refused too but cannot be written in one)."""


# Exactly the characters `printable_text` refuses (Unicode's Cc but newline and tab, and Cs): one
# regex search finds whether any is there, so text that is fine (nearly all) is not walked in Python.
_REFUSED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable_text(value: str) -> str:
    """Text as people write it: no NUL or other control characters except newline and tab, and no
    lone surrogates (they are not characters and cannot be encoded)."""
    if _REFUSED.search(value) is None:
        return value
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise ValueError(f"control character U+{ord(char):04X} at position {index}")
        if category == "Cs":
            raise ValueError(f"lone surrogate U+{ord(char):04X} at position {index}")
    return value


def _within_window(value: datetime) -> datetime:
    # A local year strictly inside the window is inside it whatever the offset (under a day): the
    # common case, decided without the offset-aware comparisons.
    if EARLIEST.year < value.year < LATEST.year - 1:
        return value
    # The year is checked first: converting year 1 or 9999 to UTC for the comparison overflows.
    if not EARLIEST.year - 1 <= value.year <= LATEST.year or not EARLIEST <= value < LATEST:
        raise ValueError("must lie between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z")
    return value


def _day_within_window(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must lie between 2000-01-01 and 2099-12-31")
    return value


_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _month_within_window(value: str) -> str:
    if not _MONTH.match(value) or not EARLIEST.year <= int(value[:4]) < LATEST.year:
        raise ValueError("must be a month YYYY-MM between 2000-01 and 2099-12")
    return value


Text = Annotated[str, AfterValidator(printable_text), Field(json_schema_extra={"pattern": PRINTABLE_PATTERN})]
"""Free text in a query or path parameter; a `RequestBody` checks every string it carries anyway."""

Timestamp = Annotated[
    AwareDatetime,
    FromText,
    AfterValidator(_within_window),
    Field(
        description="RFC 3339 with an explicit offset, between 2000-01-01 and 2100-01-01", examples=["2026-03-01T09:00:00+08:00"]
    ),
]
"""An instant: an explicit UTC offset, and within 2000-01-01..2100-01-01."""

IsoDate = Annotated[date, FromText]
"""A calendar date, YYYY-MM-DD, whose bounds its field sets (a birth date lies before 2000)."""

Day = Annotated[IsoDate, AfterValidator(_day_within_window)]
"""A calendar date, YYYY-MM-DD, within 2000..2099."""

Month = Annotated[
    str,
    AfterValidator(_month_within_window),
    Field(pattern=_MONTH.pattern, description="YYYY-MM, 2000-01..2099-12", examples=["2026-03"]),
]
"""A calendar month, YYYY-MM, within 2000..2099."""

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")


def _clock_text(value: Any) -> Any:
    if isinstance(value, time) or (isinstance(value, str) and _CLOCK.match(value)):
        return value
    raise ValueError("must be a local clock time, HH:MM or HH:MM:SS, without an offset")


ClockTime = Annotated[
    time,
    BeforeValidator(_clock_text),
    FromText,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _CLOCK.pattern,
            "description": "A local clock time (Asia/Shanghai), HH:MM or HH:MM:SS, without an offset",
            "examples": ["07:00"],
        }
    ),
]
"""A time of day on the community's clock, HH:MM[:SS]; also the type of such a time in an answer
(JSON Schema's `time` format would demand an offset, which a clock time has not)."""

Uuid = Annotated[uuid.UUID, FromText]


def _not_uuid_shaped(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        return value
    raise ValueError("a client id may not be a UUID: residents and staff are known by UUIDs")


ClientId = Annotated[
    str,
    AfterValidator(_not_uuid_shaped),
    Field(
        min_length=3,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="A machine client's id (3-64 of a-z, 0-9, '.', '_', '-'; not UUID-shaped): its token subject",
        examples=["lishui-data"],
    ),
]
"""A machine client's id: the gateway registers it, and the service it calls (a city consumer, a gate
device) knows it by the same id, so both accept exactly the same ids."""


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings_in(item)]
    # A nested object is a RequestBody of its own, which names the field inside it.
    return []


class RequestBody(BaseModel):
    """The base of every request body: unknown fields refused, strict types, printable and bounded
    text. Nested bodies subclass it too."""

    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=TEXT_MAX_LENGTH)

    # One rule for every string the body carries, in lists too, whatever the field's own bounds; after
    # the field's validation, which a discriminated union needs.
    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        if isinstance(value, str):  # the common case, without building a list
            printable_text(value)
            return value
        for text in _strings_in(value):
            printable_text(text)
        return value

    # A partial update's fields that may be left out but never set to null (their column has no
    # "none"); the others' null clears the value.
    never_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _not_nulled(self) -> Self:
        if not self.never_null:  # most bodies (and every item of a batch) have none to check
            return self
        nulled = sorted(f for f in self.never_null & self.model_fields_set if getattr(self, f) is None)
        if nulled:
            raise ValueError(f"{', '.join(nulled)} may be left out but not set to null")
        return self

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        # Only a float (or a list, which may hold one) can change: a body without is passed as it is.
        if isinstance(data, dict) and any(isinstance(value, float | list) for value in data.values()):
            return {key: _whole_number(value) for key, value in data.items()}
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        document = handler(schema)
        resolved = handler.resolve_ref_schema(document)
        for field_schema in resolved.get("properties", {}).values():
            _declare_printable(field_schema)
        return document


def _whole_number(value: Any) -> Any:
    """178.0 as 178 (JSON Schema's integer); a float field takes an int too, so nothing else changes."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole_number(item) for item in value]
    return value


def _declare_printable(field_schema: dict[str, Any]) -> None:
    """Puts the printable-text pattern on each free-text string of a field's schema (not on formats,
    enumerations or strings with a pattern of their own, which are narrower already)."""
    if field_schema.get("type") == "string" and not {"format", "pattern", "enum", "const"} & set(field_schema):
        field_schema["pattern"] = PRINTABLE_PATTERN
    for key in ("anyOf", "oneOf"):
        for option in field_schema.get(key, []):
            _declare_printable(option)
    items = field_schema.get("items")
    if isinstance(items, dict):
        _declare_printable(items)
