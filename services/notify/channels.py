"""The SMS channel as a port: what notify asks of a provider, and the local adapter.

An adapter sends one message or raises `SmsFailed`, saying whether another try may succeed.
The provider adapters live beside this one (`tencent_sms.py`); `sms_sender_for` picks by settings.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from services.notify.domain import Language, redact
from services.notify.settings import Settings


@dataclass(frozen=True)
class SmsMessage:
    # The provider's idempotency hint: the delivery this message is (its attempts share it).
    delivery_id: int
    phone: str
    language: Language
    title: str
    body: str


class SmsFailed(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> None: ...


class LocalSms:
    """Appends each message to a file under `.local` (one JSON line; the phone masked), for `make run`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def send(self, message: SmsMessage) -> None:
        line = json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "delivery_id": message.delivery_id,
                "to": redact(message.phone),
                "text": f"【{message.title}】{message.body}",
            },
            ensure_ascii=False,
        )
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def sms_sender_for(settings: Settings) -> SmsSender:
    if settings.sms_provider == "tencent":
        from services.notify.tencent_sms import TencentSms

        return TencentSms.from_settings(settings)
    return LocalSms(settings.sms_outbox_path)
