"""Notify's SMS channel is the kit's SMS port (`services/kit/sms.py`, shared with the gateway's
login codes; its adapter chosen by notify's `SmsSettings`). What is sent, when, how often it is
retried and the hourly cap are notify's rules (`deliveries.py`, `domain.py`).
"""

from __future__ import annotations

from services.kit.sms import SmsFailed, SmsMessage, SmsSender

__all__ = ["SmsFailed", "SmsMessage", "SmsSender"]
