"""Events from other services (and governance's own ballots): earning (time bank, parking, taking part
in decisions) and the property side of the sagas."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, earning, payments, redemptions, roll, statements
from services.governance.domain import Trigger
from services.governance.events import (
    BallotCast,
    BookingCompleted,
    HouseholdRegistered,
    HouseholdRollChanged,
    PointsPaymentRequested,
    RedemptionFailed,
    RedemptionFulfilled,
    ResidentOwnerChanged,
    ResidentRegistered,
    ServiceConfirmed,
    TransferReversed,
)
from services.governance.settings import Settings
from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec, Handler

EARNING_GROUP = "governance-earning"
PROPERTY_GROUP = "governance-property"


def _aware(at: datetime | None, fallback: datetime) -> datetime:
    if at is None:
        return fallback
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def on_service_confirmed(settings: Settings, session: AsyncSession, event: CloudEvent) -> None:
    """The volunteer earns by the community's rules for confirmed time-bank service."""
    data = event.parse(ServiceConfirmed)
    await earning.grant_for_event(
        session,
        settings,
        trigger=Trigger.timebank_service_confirmed,
        community=data.community,
        resident_id=data.volunteer_id,
        source_event_id=event.id,
        source_ref=data.transfer_id,
        minutes=data.minutes,
        at=_aware(data.confirmed_at, event.time),
    )


async def on_booking_completed(settings: Settings, session: AsyncSession, event: CloudEvent) -> None:
    """The spot's owner earns by the community's rules for a shared parking window that was used."""
    data = event.parse(BookingCompleted)
    await earning.grant_for_event(
        session,
        settings,
        trigger=Trigger.parking_booking_completed,
        community=data.community,
        resident_id=data.owner_id,
        source_event_id=event.id,
        source_ref=data.booking_id,
        minutes=None,
        at=_aware(data.completed_at, event.time),
    )


async def on_ballot_cast(settings: Settings, session: AsyncSession, event: CloudEvent) -> None:
    """The voter (for a proxy's ballot, the owner) earns participation points by the community's
    rules, once per decision. A worker's paper ballot names no resident and earns nothing."""
    data = event.parse(BallotCast)
    if data.resident_id is None:
        return
    await earning.grant_for_event(
        session,
        settings,
        trigger=Trigger.ballot_cast,
        community=data.community,
        resident_id=data.resident_id,
        source_event_id=domain.participation_source(data.decision_id, data.resident_id),
        source_ref=data.decision_id,
        minutes=None,
        at=_aware(data.cast_at, event.time),
    )


async def on_transfer_reversed(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(TransferReversed)
    reason = f"时间银行记录更正 / time-bank transfer {data.reverses_transfer_id} reversed"
    if data.reason:
        reason += f": {data.reason[:200]}"
    await earning.reverse_source(session, community=data.community, source_ref=data.reverses_transfer_id, reason=reason)


async def on_resident_registered(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ResidentRegistered)
    await statements.register_resident(session, data.community, data.resident_id, data.household_id, owner=data.owner)


async def on_resident_owner_changed(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ResidentOwnerChanged)
    await statements.register_resident(session, data.community, data.resident_id, data.household_id, owner=data.owner)


async def on_household_registered(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(HouseholdRegistered)
    await roll.record_unit(
        session, data.community, data.household_id, area=data.exclusive_area, sold=data.sold, buyer_key=data.buyer_key
    )


async def on_household_roll_changed(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(HouseholdRollChanged)
    await roll.record_unit(
        session, data.community, data.household_id, area=data.exclusive_area, sold=data.sold, buyer_key=data.buyer_key
    )


async def on_redemption_fulfilled(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(RedemptionFulfilled)
    await redemptions.settle_from_property(session, data.community, data.redemption_id, fulfilled=True, ticket_id=data.ticket_id)


async def on_redemption_failed(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(RedemptionFailed)
    await redemptions.settle_from_property(session, data.community, data.redemption_id, fulfilled=False, reason=data.reason)


async def on_points_payment_requested(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(PointsPaymentRequested)
    await payments.settle_points_payment(
        session,
        payment_id=data.payment_id,
        community=data.community,
        resident_id=data.resident_id,
        points=data.points,
        order_id=data.order_id,
    )


async def apply_earning_batch(handlers: Mapping[str, Handler], session: AsyncSession, events: list[CloudEvent]) -> None:
    """One fetched batch of the earning group, in its one transaction, each event by its handler in
    order, except ballots of communities without a rule on them: a burst of ballots (a whole estate
    voting) in a community that grants nothing for taking part costs one statement for the batch
    (`earning.communities_with_rules`), not a parse and a rule lookup per ballot. Events applied one
    at a time (the kit's fallback) go to the handlers, which grant nothing there either."""
    ballot_communities = {str(e.data.get("community")) for e in events if e.type == BallotCast.event_type}
    earning_in = (
        await earning.communities_with_rules(session, Trigger.ballot_cast, ballot_communities) if ballot_communities else set()
    )
    for event in events:
        if event.type == BallotCast.event_type and str(event.data.get("community")) not in earning_in:
            continue
        handler = handlers.get(event.type)
        if handler is not None:
            await handler(session, event)


def make_consumers(settings: Settings) -> list[ConsumerSpec]:
    earning_handlers: dict[str, Handler] = {
        ServiceConfirmed.event_type: partial(on_service_confirmed, settings),
        BookingCompleted.event_type: partial(on_booking_completed, settings),
        TransferReversed.event_type: on_transfer_reversed,
        BallotCast.event_type: partial(on_ballot_cast, settings),
    }
    from_property: dict[str, Handler] = {
        ResidentRegistered.event_type: on_resident_registered,
        ResidentOwnerChanged.event_type: on_resident_owner_changed,
        HouseholdRegistered.event_type: on_household_registered,
        HouseholdRollChanged.event_type: on_household_roll_changed,
        RedemptionFulfilled.event_type: on_redemption_fulfilled,
        RedemptionFailed.event_type: on_redemption_failed,
        PointsPaymentRequested.event_type: on_points_payment_requested,
    }
    return [
        # Grants are one statement each (gov_grant); one commit per fetched batch instead of per event.
        ConsumerSpec(
            group=EARNING_GROUP,
            topics=["timebank.events", "parking.events", "governance.events"],
            handlers=earning_handlers,
            apply_in_batches=True,
            batch_handler=partial(apply_earning_batch, earning_handlers),
        ),
        ConsumerSpec(group=PROPERTY_GROUP, topics=["property.events"], handlers=from_property),
    ]


# The same groups, topics and handlers with default settings, for `deploy.contracts` (which reads
# module-level specs to document who consumes what). The app builds its own from its settings.
DECLARED_CONSUMERS: list[ConsumerSpec] = make_consumers(Settings.model_construct())
