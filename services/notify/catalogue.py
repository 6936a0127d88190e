"""The declared table: which event tells whom what, on which channels, how urgently. One row per kind.

A published event type is either a row's `event_type` here or in `LEFT_OUT` with the reason no one
is told; `tests/test_contracts.py` holds every published type to that. Templates name only fields
of the event's data (and the derived `{<x>_ref}`, `{hours}`, `{<x>_yuan}` of `domain.render`);
none names a person, a phone number or a plate, and `domain.redact` masks any that slips in.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.envelope import EventData
from services.notify import events as ev
from services.notify.domain import Category, Channel, Template, Urgency


@dataclass(frozen=True)
class Named:
    """The person whose id is the event's `field`."""

    field: str


@dataclass(frozen=True)
class TicketResident:
    """The resident who filed the event's ticket (notify's directory, from `ticket.submitted`)."""


@dataclass(frozen=True)
class BuildingBackup:
    """The backup steward of the building of the event's ticket (from `building.registered`)."""


@dataclass(frozen=True)
class StaffInRole:
    """Every staff member of the community holding the role the event's `field` names."""

    field: str


@dataclass(frozen=True)
class StaffHolding:
    """Every staff member of the community holding `role` (for example the security guards, 保安)."""

    role: str


Recipient = Named | TicketResident | BuildingBackup | StaffInRole | StaffHolding

IN_APP = frozenset({Channel.in_app})
WITH_SMS = frozenset({Channel.in_app, Channel.sms})


@dataclass(frozen=True)
class Kind:
    name: str
    event: type[EventData]
    recipients: tuple[Recipient, ...]
    title: Template
    body: Template
    category: Category
    channels: frozenset[Channel] = IN_APP
    urgency: Urgency = Urgency.normal
    # The id of whoever caused the event: they are not told of their own act.
    actor: str | None = None

    @property
    def event_type(self) -> str:
        return self.event.event_type


KINDS: tuple[Kind, ...] = (
    Kind(
        "care.cancelled",
        ev.CareRequestCancelled,
        (Named("volunteer_id"),),
        Template("护理预约已取消", "Care visit cancelled"),
        Template(
            "{starts_at} 的 {service_type} 服务已取消，请不要前往。",
            "The {service_type} visit at {starts_at} is cancelled: please do not go.",
        ),
        Category.timebank,
        WITH_SMS,
        Urgency.urgent,
        actor="cancelled_by",
    ),
    Kind(
        "care.accepted",
        ev.CareRequestAccepted,
        (Named("elder_id"), Named("requested_by")),
        Template("护理预约已有人接单", "Care visit accepted"),
        Template(
            "{starts_at} 的 {service_type} 服务已有志愿者接单。",
            "A volunteer accepted the {service_type} visit at {starts_at}.",
        ),
        Category.timebank,
    ),
    Kind(
        "care.awaiting_confirmation",
        ev.ServiceLogged,
        (Named("elder_id"), Named("requested_by")),
        Template("服务已结束，请确认", "Visit done: please confirm"),
        Template(
            "{service_type} 服务已结束，共 {hours} 小时，请在 {confirm_by} 前确认或提出异议。",
            "The {service_type} visit is done ({hours} h): confirm or dispute it before {confirm_by}.",
        ),
        Category.timebank,
    ),
    Kind(
        "care.disputed",
        ev.ServiceDisputed,
        (Named("volunteer_id"),),
        Template("服务时长有异议", "Service hours disputed"),
        Template(
            "{service_type} 服务的 {hours} 小时被提出异议，本次不计入时长。",
            "The {hours} h of the {service_type} visit were disputed and will not be credited.",
        ),
        Category.timebank,
        actor="disputed_by",
    ),
    Kind(
        "hours.gift_received",
        ev.HoursGifted,
        (Named("to_member_id"),),
        Template("收到赠送的时长", "Hours received"),
        Template("您的亲属赠送给您 {hours} 小时。", "A relative gave you {hours} h."),
        Category.timebank,
        actor="from_member_id",
    ),
    Kind(
        "care.confirmed",
        ev.ServiceConfirmed,
        (Named("volunteer_id"),),
        Template("服务时长已确认", "Service hours confirmed"),
        Template("{hours} 小时已存入您的时间银行账户。", "{hours} h were added to your time-bank account."),
        Category.timebank,
    ),
    Kind(
        "hours.reversed",
        ev.TransferReversed,
        (Named("volunteer_id"),),
        Template("服务时长已更正", "Service hours corrected"),
        Template("一笔 {hours} 小时的服务记录已被更正冲回。", "A record of {hours} h of service was corrected and reversed."),
        Category.timebank,
    ),
    Kind(
        "hours.expiring",
        ev.HoursExpiring,
        (Named("member_id"),),
        Template("时间银行时长即将到期", "Time-bank hours expiring"),
        Template(
            "您有 {hours} 小时将于 {expires_on} 到期转入公益池，可在此前使用或赠予亲属。",
            "{hours} h will expire to the community pool on {expires_on}: use or give them before then.",
        ),
        Category.timebank,
        WITH_SMS,
    ),
    Kind(
        "hours.expired",
        ev.HoursExpired,
        (Named("member_id"),),
        Template("时间银行时长已到期", "Time-bank hours expired"),
        Template(
            "您有 {hours} 小时超过 {valid_months} 个月有效期，已转入公益池。",
            "{hours} h held longer than {valid_months} months expired to the community pool.",
        ),
        Category.timebank,
        WITH_SMS,
    ),
    Kind(
        "ticket.filed",
        ev.TicketSubmitted,
        (Named("assignee_id"),),
        Template("新工单", "New ticket"),
        Template(
            "{category}工单 #{ticket_ref} 已派给您（{priority}）。", "A {category} ticket #{ticket_ref} ({priority}) is yours."
        ),
        Category.property,
    ),
    Kind(
        "ticket.status_changed",
        ev.TicketStatusChanged,
        (TicketResident(),),
        Template("工单状态更新", "Ticket update"),
        Template("您的{category}工单 #{ticket_ref}：{status}。", "Your {category} ticket #{ticket_ref}: {status}."),
        Category.property,
        actor="actor_id",
    ),
    Kind(
        "ticket.assigned",
        ev.TicketReassigned,
        (Named("assignee_id"),),
        Template("工单转派给您", "Ticket handed to you"),
        Template(
            "{category}工单 #{ticket_ref} 已转派给您（{priority}）。",
            "A {category} ticket #{ticket_ref} ({priority}) was handed to you.",
        ),
        Category.property,
        actor="actor_id",
    ),
    Kind(
        "ticket.completed",
        ev.TicketCompleted,
        (Named("resident_id"),),
        Template("工单已完成，请确认", "Ticket done: please confirm"),
        Template(
            "您的{category}工单 #{ticket_ref} 已完成，请确认或退回。",
            "Your {category} ticket #{ticket_ref} is done: confirm or return it.",
        ),
        Category.property,
    ),
    Kind(
        "ticket.sla_breached",
        ev.TicketSlaBreached,
        (Named("assignee_id"), BuildingBackup(), StaffInRole("escalated_to")),
        Template("工单超时", "Ticket overdue"),
        Template(
            "{category}工单 #{ticket_ref} 已超过{kind}时限。", "{category} ticket #{ticket_ref} missed its {kind} deadline."
        ),
        Category.property,
        WITH_SMS,
        Urgency.urgent,
    ),
    Kind(
        "ticket.payment_settled",
        ev.PaymentSettled,
        (TicketResident(),),
        Template("工单付款结果", "Ticket payment"),
        Template(
            "工单 #{ticket_ref} 的付款 {amount_yuan} 元：{status}。",
            "Payment of ¥{amount_yuan} for ticket #{ticket_ref}: {status}.",
        ),
        Category.property,
    ),
    Kind(
        "parking.confirmed",
        ev.BookingConfirmed,
        (Named("booker_id"),),
        Template("车位预约成功", "Parking booked"),
        Template(
            "预约 #{booking_ref} 已确认：{start} 至 {end}，费用 {fee_yuan} 元。",
            "Booking #{booking_ref} is confirmed: {start} to {end}, ¥{fee_yuan}.",
        ),
        Category.parking,
    ),
    Kind(
        "parking.starting_soon",
        ev.BookingStartingSoon,
        (Named("booker_id"),),
        Template("车位预约即将开始", "Parking starts soon"),
        Template("预约 #{booking_ref} 将于 {start} 开始。", "Booking #{booking_ref} starts at {start}."),
        Category.parking,
    ),
    Kind(
        "parking.overstay",
        ev.BookingOverstayed,
        (Named("booker_id"),),
        Template("停车已超时", "Parking overstay"),
        Template(
            "预约 #{booking_ref} 已于 {end} 结束，请尽快驶离；超时部分按半小时计费。",
            "Booking #{booking_ref} ended at {end}: please leave; every started half hour over is charged.",
        ),
        Category.parking,
        WITH_SMS,
        Urgency.urgent,
    ),
    Kind(
        "parking.overstay_owner",
        ev.BookingOverstayed,
        (Named("owner_id"),),
        Template("您的车位被超时占用", "Your spot is overstayed"),
        Template(
            "预约 #{booking_ref} 已于 {end} 结束，车辆尚未驶离。",
            "Booking #{booking_ref} ended at {end} and the car has not left yet.",
        ),
        Category.parking,
    ),
    Kind(
        "parking.completed",
        ev.BookingCompleted,
        (Named("booker_id"),),
        Template("停车已结束", "Parking ended"),
        Template("预约 #{booking_ref} 已结束，费用 {fee_yuan} 元。", "Booking #{booking_ref} has ended; the fee is ¥{fee_yuan}."),
        Category.parking,
    ),
    Kind(
        "parking.shared",
        ev.BookingCompleted,
        (Named("owner_id"),),
        Template("车位共享收益", "Your spot was used"),
        Template(
            "您的车位被预约使用一次，收益 {owner_share_yuan} 元。",
            "Your spot was booked and used; your share is ¥{owner_share_yuan}.",
        ),
        Category.parking,
    ),
    Kind(
        "points.granted",
        ev.PointsGranted,
        (Named("resident_id"),),
        Template("获得积分", "Points earned"),
        Template("您获得 {points} 积分。", "You earned {points} points."),
        Category.points,
    ),
    Kind(
        "redemption.fulfilled",
        ev.RedemptionCaptured,
        (Named("resident_id"),),
        Template("兑换已完成", "Redemption fulfilled"),
        Template("您的兑换已完成，使用 {points} 积分。", "Your redemption is fulfilled; {points} points were spent."),
        Category.points,
    ),
    Kind(
        "redemption.released",
        ev.RedemptionReleased,
        (Named("resident_id"),),
        Template("兑换未完成", "Redemption released"),
        Template("兑换未能完成，{points} 积分已退回。", "The redemption could not be fulfilled; {points} points were returned."),
        Category.points,
    ),
    Kind(
        "security.alarm",
        ev.AlarmRaised,
        (Named("steward_id"), Named("relative_id"), StaffHolding("security_guard")),
        Template("安防报警", "Security alarm"),
        Template(
            "社区安防报警：{kind}（#{alarm_ref}），请立即查看。",
            "Security alarm: {kind} (#{alarm_ref}); please check now.",
        ),
        Category.property,
        WITH_SMS,
        Urgency.urgent,
    ),
    Kind(
        "security.device_offline",
        ev.DeviceWentOffline,
        (Named("steward_id"),),
        Template("设备离线", "Device offline"),
        Template(
            "{kind} 设备 {device_id} 自 {offline_since} 起离线。",
            "The {kind} device {device_id} has been offline since {offline_since}.",
        ),
        Category.property,
    ),
    Kind(
        "security.device_back",
        ev.DeviceCameBack,
        (Named("steward_id"),),
        Template("设备恢复在线", "Device back online"),
        Template(
            "{kind} 设备 {device_id} 已于 {back_at} 恢复在线。", "The {kind} device {device_id} is back online since {back_at}."
        ),
        Category.property,
    ),
)

# Published types no one is told of, and why.
LEFT_OUT: dict[str, str] = {
    "property.building.registered.v1": "kept in notify's directory (a ticket's backup steward); tells no one",
    "property.resident.registered.v1": "kept in notify's directory (the phone an SMS goes to); tells no one",
    "property.staff.registered.v1": "kept in notify's directory (who holds the role a breach escalates to); tells no one",
    "property.household.registered.v1": "registry bookkeeping",
    "timebank.relative.verified.v1": "kept in notify's directory (where an elder's copies go); tells no one",
    "property.household.roll_changed.v1": "registry bookkeeping (a unit's area and owners for votes)",
    "property.resident.owner_changed.v1": "registry bookkeeping (who votes in owners' decisions); the admin made it",
    "governance.ballot.cast.v1": "the voter's own act: the answer to the ballot carries its receipt",
    "governance.decision.closed.v1": "not yet: telling every eligible voter needs the decision's frozen roll in notify",
    "governance.pledge.ordered.v1": "property opens the household's order (a ticket to pay) from it; no message yet",
    "governance.pledge_offer.settled.v1": "not yet: telling every pledging household needs the pledges in notify",
    "property.points_payment.requested.v1": "a saga step; property.payment.settled tells the resident the outcome",
    "governance.points_payment.settled.v1": "a saga step; property.payment.settled tells the resident the outcome",
    "governance.redemption.reserved.v1": "the resident's own request; captured or released tells the outcome",
    "property.redemption.fulfilled.v1": "governance.redemption.captured tells the resident",
    "property.redemption.failed.v1": "governance.redemption.released tells the resident",
    "citysync.consumer.revoked.v1": "about machine clients of the city feed: no resident or steward to tell",
    "citysync.grant.revoked.v1": "about machine clients of the city feed: no resident or steward to tell",
    "security.pass.issued.v1": "the resident's own act: the answer carries the pass",
    "security.pass.revoked.v1": "the resident's own act; devices read it, no person needs telling",
    "security.pass.car_allowed.v1": "for parking's gate; the resident's own act, the answer carries the pass",
    "security.access.recorded.v1": "every door opening: far too many to tell anyone, and the household reads them in the app",
    "security.alarm.acknowledged.v1": "the answering staff member's own act; the city counts its response time",
    "security.alarm.cleared.v1": "not yet: staff see it on the alarm list; a row needs the alarm's recipients in notify",
}

KINDS_BY_TYPE: dict[str, tuple[Kind, ...]] = {}
for _kind in KINDS:
    KINDS_BY_TYPE[_kind.event_type] = (*KINDS_BY_TYPE.get(_kind.event_type, ()), _kind)
