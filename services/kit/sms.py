"""The SMS port every sender uses (notify's urgent messages, the gateway's login codes), and its
local adapter. Provider adapters live beside it (`services/kit/tencent_sms.py`); `sms_sender_for`
picks one by configuration.

An adapter sends one message or raises `SmsFailed`, saying whether another try may succeed. What to
send, when, how often to retry and to whom are the callers' rules, not the port's.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic_settings import BaseSettings

# A mainland mobile number, bare or with +86: what no log line or local file may show in full.
PHONE = re.compile(r"(?<!\d)(?:\+?86)?(1\d{2})\d{4}(\d{4})(?!\d)")

SmsProvider = Literal["local", "tencent"]


def mask_phones(text: str) -> str:
    """Every mobile number in `text` as 138****5678."""
    return PHONE.sub(r"\1****\2", text)


@dataclass(frozen=True)
class SmsMessage:
    # The sender's own name for what this message is ("delivery-42", "login-code"): the provider's
    # session context, and the line's key in the local file. Attempts of one message share it.
    reference: str
    phone: str
    # "zh-CN" or "en": the provider template the message is sent with.
    language: str
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
    """Appends each message to a file under `.local` (one JSON line; the phone masked), for `make run`.

    One file may serve several processes (notify and the gateway write the same one locally): each
    line is one append.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def send(self, message: SmsMessage) -> None:
        line = json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "reference": message.reference,
                "to": mask_phones(message.phone),
                "text": f"【{message.title}】{message.body}",
            },
            ensure_ascii=False,
        )
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


@dataclass(frozen=True)
class TencentConfig:
    """Tencent Cloud SMS: credentials, the application, its signature, one template per language."""

    secret_id: str
    secret_key: str
    region: str
    sdk_app_id: str
    sign_name: str
    template_zh: str
    template_en: str
    endpoint: str = ""
    scheme: str = "https"
    timeout_s: float = 5.0


def sms_sender_for(provider: SmsProvider, outbox_path: str, tencent: TencentConfig | None = None) -> SmsSender:
    if provider == "tencent":
        if tencent is None:
            raise ValueError("the tencent SMS provider needs its configuration")
        # Imported only when chosen: the provider's SDK is not needed to run locally.
        from services.kit.tencent_sms import TencentSms

        return TencentSms(tencent)
    return LocalSms(outbox_path)


class SmsSettings(BaseSettings):
    """The SMS port's configuration, under each service's own prefix (NOTIFY_SMS_PROVIDER,
    GATEWAY_SMS_PROVIDER...): mixed into the settings of every service that sends SMS."""

    # "local" appends each message to `sms_outbox_path` (`make run` prints it; notify and the
    # gateway share it locally); "tencent" sends through Tencent Cloud SMS with the values below.
    sms_provider: SmsProvider = "local"
    sms_outbox_path: str = ".local/notify-sms.log"
    sms_timeout_s: float = 5.0
    tencent_secret_id: str = ""
    tencent_secret_key: str = ""
    tencent_region: str = "ap-guangzhou"
    tencent_sms_sdk_app_id: str = ""
    tencent_sms_sign_name: str = ""
    # Template ids registered with the provider, one per language: the provider sends only
    # registered templates, with the message's title and body as its two parameters.
    tencent_sms_template_zh: str = ""
    tencent_sms_template_en: str = ""
    # Overrides the provider's endpoint (a test server); empty: the SDK's default.
    tencent_endpoint: str = ""
    tencent_scheme: Literal["https", "http"] = "https"

    def tencent_config(self) -> TencentConfig:
        return TencentConfig(
            secret_id=self.tencent_secret_id,
            secret_key=self.tencent_secret_key,
            region=self.tencent_region,
            sdk_app_id=self.tencent_sms_sdk_app_id,
            sign_name=self.tencent_sms_sign_name,
            template_zh=self.tencent_sms_template_zh,
            template_en=self.tencent_sms_template_en,
            endpoint=self.tencent_endpoint,
            scheme=self.tencent_scheme,
            timeout_s=self.sms_timeout_s,
        )

    def sms_sender(self) -> SmsSender:
        return sms_sender_for(self.sms_provider, self.sms_outbox_path, self.tencent_config())
