"""Notify's pure rules: messages, masking, quiet hours, retries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from services.kit.envelope import CloudEvent
from services.notify.catalogue import KINDS
from services.notify.domain import (
    DeliveryStatus,
    Language,
    QuietHours,
    Template,
    Urgency,
    after_failure,
    redact,
    render,
    retry_delay_s,
    sms_due_at,
)
from services.notify.notifications import data_of

TZ = ZoneInfo("Asia/Shanghai")
PHONE, ID_NUMBER, PLATE = "13812345678", "330102199001011234", "浙A12345"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"call {PHONE} now", "call 138****5678 now"),
        ("to +8613812345678.", "to 138****5678."),
        (f"id {ID_NUMBER}", "id 3301**********1234"),
        ("id 33010219900101123X", "id 3301**********123X"),
        (f"车牌 {PLATE} 已离场", "车牌 浙A***45 已离场"),
        ("ticket #A1B2C3, 12 points, 1.5 h", "ticket #A1B2C3, 12 points, 1.5 h"),
    ],
)
def test_redact_masks_phone_numbers_id_numbers_and_plates(text: str, masked: str) -> None:
    assert redact(text) == masked


def hostile(kind_event: Any) -> dict[str, Any]:
    """Every field of the event filled with personal data where it can hold text."""
    data: dict[str, Any] = {}
    for name, field in kind_event.model_fields.items():
        types = {field.annotation, *get_args(field.annotation)}
        if str in types:
            data[name] = f"{PHONE} {ID_NUMBER} {PLATE}"
        elif int in types:
            data[name] = 1234
        elif list[str] in types:
            data[name] = [PHONE]
        else:
            data[name] = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    return data


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_event_data_models_are_flat(kind: Any) -> None:
    """`data_of` takes a model's attributes as its data: true only while no field holds a model."""
    data = hostile(kind.event)
    for name, field in kind.event.model_fields.items():
        if date in {field.annotation, *get_args(field.annotation)}:
            data[name] = date(2026, 12, 5)
    event = CloudEvent(type=kind.event.event_type, source="/tests", key="k", data=data)
    data = data_of(event, kind.event)
    assert data == event.parse(kind.event).model_dump()
    assert not any(isinstance(value, BaseModel) for value in data.values())


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@pytest.mark.parametrize("language", list(Language))
def test_no_template_renders_a_phone_number_id_number_or_plate_in_full(kind: Any, language: Language) -> None:
    data = hostile(kind.event)
    for template in (kind.title, kind.body):
        text = render(template, data, language, TZ)
        assert PHONE not in text and ID_NUMBER not in text and PLATE not in text, text


def test_a_message_made_once_is_made_again_for_other_values_and_stays_masked() -> None:
    template = Template("您获得 {points} 积分，致电 {phone}。", "You earned {points} points; call {phone}.")
    first, again = {"points": 3, "phone": PHONE}, {"points": 4, "phone": PHONE}
    for _ in range(2):  # the second round is served from what the first made
        assert render(template, first, Language.zh, TZ) == "您获得 3 积分，致电 138****5678。"
        assert render(template, again, Language.zh, TZ) == "您获得 4 积分，致电 138****5678。"
        assert render(template, first, Language.en, TZ) == "You earned 3 points; call 138****5678."


def test_a_message_is_written_in_the_readers_language_with_local_times_and_readable_words() -> None:
    template = Template(
        "{starts_at} 您的{category}工单 #{ticket_ref}：{status}，{hours} 小时，{fee_yuan} 元", "{category}: {status}, {hours} h"
    )
    data = {"starts_at": datetime(2026, 12, 5, 23, 30, tzinfo=UTC), "category": "repair", "ticket_id": "t-abcdef123456"}
    data |= {"status": "in_progress", "minutes": 90, "fee_fen": 1205}
    assert render(template, data, Language.zh, TZ) == "12-06 07:30 您的报修工单 #123456：处理中，1.5 小时，12.05 元"
    assert render(template, data, Language.en, TZ) == "repair: in progress, 1.5 h"


def at_local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 5, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (0, 0, True), (6, 59, True), (7, 0, False), (12, 0, False)],
)
def test_default_quiet_hours_are_22_to_7_shanghai_time(hour: int, minute: int, quiet: bool) -> None:
    assert QuietHours().contains(at_local(hour, minute)) is quiet


def test_quiet_hours_defer_a_non_urgent_sms_to_their_end_and_never_an_urgent_one() -> None:
    quiet = QuietHours()
    night = at_local(23, 15)
    assert sms_due_at(Urgency.normal, quiet, night) == datetime(2026, 12, 6, 7, 0, tzinfo=TZ)
    assert sms_due_at(Urgency.normal, quiet, at_local(3)) == datetime(2026, 12, 5, 7, 0, tzinfo=TZ)
    assert sms_due_at(Urgency.urgent, quiet, night) == night
    assert sms_due_at(Urgency.normal, quiet, at_local(9)) == at_local(9)
    daytime = QuietHours(time(12, 0), time(14, 0))
    assert sms_due_at(Urgency.normal, daytime, at_local(13)) == at_local(14)
    assert QuietHours(time(8), time(8)).contains(at_local(8)) is False  # an empty window


@given(attempt=st.integers(1, 30), draw=st.floats(0, 1, exclude_max=True))
def test_retry_delays_are_jittered_below_an_exponential_ceiling_and_capped(attempt: int, draw: float) -> None:
    delay = retry_delay_s(attempt, base_s=2.0, cap_s=600.0, draw=draw)
    assert 0 <= delay < min(600.0, 2.0 * 2 ** (attempt - 1))


def test_the_last_failed_attempt_is_the_dead_letter() -> None:
    assert [after_failure(n, 3) for n in (1, 2, 3, 4)] == [
        DeliveryStatus.pending,
        DeliveryStatus.pending,
        DeliveryStatus.dead,
        DeliveryStatus.dead,
    ]
