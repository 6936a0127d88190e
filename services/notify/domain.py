"""Notify's rules, pure: how a message is written, when an SMS may go, how a failed one is retried.

Nothing here touches the database or the network; `catalogue.py` declares which events become
which messages, and the use-case modules apply these rules.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.sms import mask_phones


class Channel(StrEnum):
    in_app = "in_app"
    sms = "sms"


class Urgency(StrEnum):
    normal = "normal"
    urgent = "urgent"  # SMS goes at once, through quiet hours


class Category(StrEnum):
    """What a person may switch channels on or off for (per category, per channel)."""

    timebank = "timebank"
    property = "property"
    parking = "parking"
    points = "points"


class Language(StrEnum):
    zh = "zh-CN"
    en = "en"


class DeliveryStatus(StrEnum):
    pending = "pending"  # due at next_attempt_at (deferred by quiet hours or a retry's backoff)
    sending = "sending"  # claimed by a worker until next_attempt_at
    sent = "sent"
    dead = "dead"  # gave up after the last attempt; the reason is kept
    capped = "capped"  # the recipient's hourly SMS cap was reached
    no_address = "no_address"  # the recipient has no phone on record


FINAL_DELIVERY = frozenset({DeliveryStatus.sent, DeliveryStatus.dead, DeliveryStatus.capped, DeliveryStatus.no_address})


@dataclass(frozen=True)
class Template:
    """A message in both languages: `{field}` names a field of the event's data."""

    zh: str
    en: str

    def text(self, language: Language) -> str:
        return self.zh if language is Language.zh else self.en

    def fields(self) -> set[str]:
        return {name for text in (self.zh, self.en) for _, name, _, _ in string.Formatter().parse(text) if name}


# Words of other services that a message shows, in the reader's language.
LABELS: dict[Language, dict[str, str]] = {
    Language.zh: {
        "repair": "报修",
        "cleaning": "保洁",
        "complaint": "投诉",
        "consultation": "咨询",
        "service": "增值服务",
        "assigned": "已派单",
        "queued": "待接单",
        "accepted": "已接单",
        "quoted": "待确认报价",
        "approved": "报价已确认",
        "in_progress": "处理中",
        "paused": "已暂停",
        "completed": "已完成待确认",
        "confirmed": "已确认",
        "closed": "已关闭",
        "cancelled": "已取消",
        "response": "响应",
        "resolution": "解决",
        "urgent": "紧急",
        "normal": "普通",
    },
    Language.en: {"service": "value-added service", "in_progress": "in progress", "quoted": "quoted, awaiting approval"},
}

# Personal data no message may show in full (the templates never name it; this catches a slip).
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{10,13}(\d{3}[\dXx])(?![0-9A-Za-z])")
PLATE = re.compile(r"([\u4e00-\u9fa5][A-Z])[A-Z0-9]{3,4}([A-Z0-9]{2})")


# Every pattern above needs eleven digits in a row (a phone; an ID number has more) or a Chinese
# character before a capital letter (a plate): a text with neither has nothing to mask, and most
# texts are checked with this one search instead of three substitutions.
MAYBE_PERSONAL = re.compile(r"\d{11}|[\u4e00-\u9fa5][A-Z]")


def redact(text: str) -> str:
    """Mask phone numbers (138****5678), ID-card numbers (3301**********123X) and plates (浙A***45)."""
    if MAYBE_PERSONAL.search(text) is None:
        return text
    text = ID_NUMBER.sub(lambda m: m[1] + "*" * (len(m[0]) - 8) + m[2], text)
    text = mask_phones(text)
    return PLATE.sub(lambda m: m[1] + "*" * (len(m[0]) - 4) + m[2], text)


def short_ref(value: str) -> str:
    """The last 6 characters of an id: enough to tell one's own tickets apart, not a lookup key."""
    return value[-6:].upper()


def shown(value: Any, language: Language, tz: ZoneInfo) -> str:
    if isinstance(value, datetime):
        return value.astimezone(tz).strftime("%m-%d %H:%M")
    if isinstance(value, str):
        return LABELS[language].get(value, value.replace("_", " ") if language is Language.en else value)
    return str(value)


@functools.cache
def _fields_of(text: str) -> tuple[str, ...]:
    """The names a template text fills in (`{ticket_ref}` -> `ticket_ref`), each once."""
    names = (name for _, name, _, _ in string.Formatter().parse(text) if name)
    return tuple(dict.fromkeys(re.split(r"[.\[]", name, maxsplit=1)[0] for name in names))


def _value(name: str, data: Mapping[str, Any], language: Language, tz: ZoneInfo) -> str:
    """One field as a message shows it; the derived names first, as they stand in for raw data."""
    if name == "hours" and isinstance(minutes := data.get("minutes"), int):
        return f"{minutes / 60:.1f}"
    if name.endswith("_ref") and isinstance(ident := data.get(name.removesuffix("_ref") + "_id"), str):
        return short_ref(ident)
    if name.endswith("_yuan") and isinstance(fen := data.get(name.removesuffix("_yuan") + "_fen"), int):
        return f"{fen // 100}.{fen % 100:02d}"
    return shown(data[name], language, tz)


def render(template: Template, data: Mapping[str, Any], language: Language, tz: ZoneInfo) -> str:
    """The template in the reader's language with the event's fields filled in, personal data masked.

    Every `*_id` field is offered as `{<name>_ref}`, its short reference; every `*_fen` amount as
    `{<name>_yuan}`; `{hours}` is `minutes` in hours with one decimal. Only the fields the text
    names are shown (a fan-out renders two texts per notification).
    """
    text = template.text(language)
    names = _fields_of(text)
    return _filled(text, tuple(_value(name, data, language, tz) for name in names) if names else ())


@functools.lru_cache(maxsize=4096)
def _filled(text: str, values: tuple[str, ...]) -> str:
    """A text with its fields' values filled in, masked. A backlog tells the same few messages
    thousands of times (a title with no field, a body with a few values): each is made once."""
    return redact(text.format_map(dict(zip(_fields_of(text), values, strict=True))))


# --- quiet hours ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    """A local-time window in which non-urgent SMS waits; it may cross midnight (22:00-07:00)."""

    start: time = time(22, 0)
    end: time = time(7, 0)
    timezone: str = "Asia/Shanghai"

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone)).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, at: datetime) -> datetime:
        """The first moment at or after `at` outside the window."""
        if not self.contains(at):
            return at
        tz = ZoneInfo(self.timezone)
        local = at.astimezone(tz)
        end = datetime.combine(local.date(), self.end, tzinfo=tz)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=tz)
        return end


def sms_due_at(urgency: Urgency, quiet: QuietHours, now: datetime) -> datetime:
    """When an SMS may first be sent: urgent ones at once, others after the quiet hours."""
    return now if urgency is Urgency.urgent else quiet.ends_after(now)


# --- retries -------------------------------------------------------------------------------------


def retry_delay_s(attempt: int, *, base_s: float, cap_s: float, draw: float) -> float:
    """Full-jitter exponential backoff after `attempt` failures: uniform in [0, min(cap, base·2^(n-1))).

    `draw` is a uniform random number in [0, 1), passed in so the rule stays pure and testable.
    """
    ceiling = min(cap_s, base_s * math.pow(2, max(attempt - 1, 0)))
    return ceiling * draw


def after_failure(attempt: int, max_attempts: int) -> DeliveryStatus:
    """Another try, or the dead letter once `max_attempts` have failed."""
    return DeliveryStatus.dead if attempt >= max_attempts else DeliveryStatus.pending


def hour_of(at: datetime) -> datetime:
    """The clock hour an SMS counts against for the per-recipient hourly cap."""
    return at.replace(minute=0, second=0, microsecond=0)
