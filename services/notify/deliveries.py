"""Sending the SMS copies: claim what is due, send through the port, record each attempt.

Every replica runs the rounds; `FOR UPDATE SKIP LOCKED` and the claim's lease keep two workers off
one delivery. The per-recipient hourly cap is taken at a delivery's first claim by one upsert whose
condition PostgreSQL re-checks under the row lock, so it holds however many workers race. Failures
retry with full-jitter backoff; after the last attempt the delivery is dead with its reason. The
in-app notification is never touched.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.notify.channels import SmsFailed, SmsMessage, SmsSender
from services.notify.domain import DeliveryStatus, Language, after_failure, hour_of, retry_delay_s
from services.notify.models import OPEN_DELIVERY_SQL
from services.notify.settings import Settings

CLAIM = text(
    f"""
    WITH due AS (
        SELECT id FROM deliveries
        WHERE {OPEN_DELIVERY_SQL} AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => :claim_s), updated_at = now()
    FROM due, notifications n, people p
    WHERE d.id = due.id AND n.id = d.notification_id AND p.community = n.community AND p.person_id = n.recipient_id
    RETURNING d.id, d.attempts, n.community, n.recipient_id, n.title, n.body, p.phone, p.language
    """
)

TAKE_QUOTA = text(
    """
    INSERT INTO sms_hours AS h (community, recipient_id, hour, sent) VALUES (:community, :recipient, :hour, 1)
    ON CONFLICT (community, recipient_id, hour) DO UPDATE SET sent = h.sent + 1 WHERE h.sent < :cap
    RETURNING sent
    """
)

SETTLE = text(
    """
    UPDATE deliveries SET status = :status, next_attempt_at = :next_at, last_error = :error, updated_at = now()
    WHERE id = :id AND status = 'sending' AND attempts = :attempt
    """
)

RECORD_ATTEMPT = text(
    "INSERT INTO delivery_attempts (delivery_id, attempt, outcome, error) VALUES (:id, :attempt, :outcome, :error)"
)


# Deliveries one round claims; a full round means more may be due at once.
ROUND_SIZE = 50


@dataclass(frozen=True)
class Claim:
    id: int
    attempt: int
    message: SmsMessage


async def claim_due(session: AsyncSession, settings: Settings, limit: int = ROUND_SIZE) -> list[Claim]:
    """Claim due deliveries; at a first attempt take the hourly quota, or mark it capped."""
    claims: list[Claim] = []
    async with transaction(session):
        rows = (await session.execute(CLAIM, {"limit": limit, "claim_s": settings.sms_claim_s})).all()
        for row in rows:
            if row.attempts == 1:
                quota = {"community": row.community, "recipient": row.recipient_id, "hour": hour_of(datetime.now(UTC))}
                if (await session.execute(TAKE_QUOTA, {**quota, "cap": settings.sms_per_recipient_per_hour})).first() is None:
                    await session.execute(
                        SETTLE,
                        {
                            "id": row.id,
                            "attempt": 1,
                            "status": DeliveryStatus.capped.value,
                            "next_at": datetime.now(UTC),
                            "error": "hourly cap",
                        },
                    )
                    continue
            message = SmsMessage(f"delivery-{row.id}", row.phone, Language(row.language), row.title, row.body)
            claims.append(Claim(row.id, row.attempts, message))
    return claims


async def record(session: AsyncSession, settings: Settings, claim: Claim, failure: SmsFailed | None) -> DeliveryStatus:
    """Keep the attempt and move the delivery on: sent, retried later, or dead with the reason."""
    now = datetime.now(UTC)
    if failure is None:
        status, next_at, error = DeliveryStatus.sent, now, None
    else:
        status = after_failure(claim.attempt, settings.sms_max_attempts) if failure.retryable else DeliveryStatus.dead
        delay = retry_delay_s(
            claim.attempt, base_s=settings.sms_backoff_s, cap_s=settings.sms_backoff_cap_s, draw=random.random()
        )
        next_at, error = now + timedelta(seconds=delay), failure.reason[:500]
    params: dict[str, Any] = {"id": claim.id, "attempt": claim.attempt}
    async with transaction(session):
        await session.execute(RECORD_ATTEMPT, {**params, "outcome": "sent" if failure is None else "failed", "error": error})
        await session.execute(SETTLE, {**params, "status": status.value, "next_at": next_at, "error": error})
    return status


async def send_one(sender: SmsSender, claim: Claim, timeout_s: float) -> SmsFailed | None:
    try:
        await asyncio.wait_for(sender.send(claim.message), timeout_s)
    except SmsFailed as failure:
        return failure
    except TimeoutError:
        return SmsFailed("timeout: the provider did not answer in time", retryable=True)
    except Exception as exc:
        return SmsFailed(f"{exc.__class__.__name__}", retryable=True)
    return None


async def deliver_round(state: Any) -> int:
    """One round: claim, send concurrently, record. Returns how many deliveries it claimed."""
    settings: Settings = state.settings
    sender: SmsSender = state.sms_sender
    async with state.sessionmaker() as session:
        claims = await claim_due(session, settings)
    outcomes = await asyncio.gather(*(send_one(sender, claim, settings.sms_timeout_s) for claim in claims))
    for claim, failure in zip(claims, outcomes, strict=True):
        async with state.sessionmaker() as session:
            await record(session, settings, claim, failure)
    return len(claims)
