"""Parking's problem types (RFC 9457). The slugs are public: clients switch on them."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from services.kit.problems import Problem
from services.parking.domain import RangeProblem


class SpotNotFound(Problem):
    slug = "parking/spot-not-found"
    status = 404
    title_zh = "车位不存在"
    title_en = "Spot not found"


class WindowNotFound(Problem):
    slug = "parking/window-not-found"
    status = 404
    title_zh = "共享时段不存在"
    title_en = "Availability window not found"


class BookingNotFound(Problem):
    slug = "parking/booking-not-found"
    status = 404
    title_zh = "预约不存在"
    title_en = "Booking not found"


class GateEventNotFound(Problem):
    slug = "parking/gate-event-not-found"
    status = 404
    title_zh = "道闸记录不存在"
    title_en = "Gate event not found"


class NotSpotOwner(Problem):
    slug = "parking/not-spot-owner"
    status = 403
    title_zh = "只有车位所有人或物业可以操作"
    title_en = "Only the spot's owner or property staff may do this"


class SpotNotVerified(Problem):
    slug = "parking/spot-not-verified"
    status = 409
    title_zh = "车位尚未通过物业核验"
    title_en = "The spot has not been verified by property staff"


class DuplicateSpot(Problem):
    slug = "parking/duplicate-spot"
    status = 409
    title_zh = "该车位编号已登记"
    title_en = "A spot with this code is already registered"


class InvalidTimeRange(Problem):
    slug = "parking/invalid-time-range"
    status = 422
    title_zh = "时间范围无效"
    title_en = "Invalid time range"


class BookingInPast(Problem):
    slug = "parking/booking-in-past"
    status = 422
    title_zh = "不能预约过去的时间"
    title_en = "A booking cannot start in the past"


class TooShort(Problem):
    slug = "parking/too-short"
    status = 422
    title_zh = "时长低于社区规定的最短时长"
    title_en = "Shorter than the community's minimum"


class OutsideWindow(Problem):
    slug = "parking/outside-window"
    status = 409
    title_zh = "所选时间不在车位的共享时段内"
    title_en = "The requested time is not inside one of the spot's availability windows"


class BookingConflict(Problem):
    slug = "parking/booking-conflict"
    status = 409
    title_zh = "该时段已被预约"
    title_en = "The spot is already booked for an overlapping time"


class WindowOverlaps(Problem):
    slug = "parking/window-overlaps"
    status = 409
    title_zh = "与该车位已有的共享时段重叠"
    title_en = "Overlaps another availability window of this spot"


class WindowInUse(Problem):
    slug = "parking/window-in-use"
    status = 409
    title_zh = "该时段内仍有有效预约，不能撤回或缩短"
    title_en = "Active bookings lie in the part you want to withdraw or shrink"


class InvalidBookingState(Problem):
    slug = "parking/invalid-booking-state"
    status = 409
    title_zh = "预约当前状态不允许此操作"
    title_en = "The booking's status does not allow this"


class HoldExpired(Problem):
    slug = "parking/hold-expired"
    status = 409
    title_zh = "预约保留已过期，请重新预约"
    title_en = "The hold expired before payment; book again"


class PaymentDeclined(Problem):
    slug = "parking/payment-declined"
    status = 402
    title_zh = "支付被拒绝"
    title_en = "The payment was declined"


class UnknownGateDevice(Problem):
    slug = "parking/unknown-gate-device"
    status = 403
    title_zh = "未登记的道闸设备"
    title_en = "This gate device is not registered in the community"


class DuplicateGateDevice(Problem):
    slug = "parking/duplicate-gate-device"
    status = 409
    title_zh = "设备编号已登记"
    title_en = "A gate device with this id is already registered"


class InvalidSettings(Problem):
    slug = "parking/invalid-settings"
    status = 422
    title_zh = "社区停车设置无效"
    title_en = "Invalid community parking settings"


def range_problem(err: RangeProblem, what: str) -> Problem:
    """The problem for a range that breaks a rule; `what` names the range in Chinese (预约, 共享时段)."""
    if err.code == "in-the-past":
        return BookingInPast(("开始时间已过", "The start time has passed"))
    if err.code == "too-short":
        return TooShort((f"{what}时长不足", f"The {what} is too short"))
    if err.code == "end-before-start":
        return InvalidTimeRange(("结束时间必须晚于开始时间", "The end must be after the start"))
    return InvalidTimeRange(("时间必须带时区", "Times must carry a UTC offset"))


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the constraint PostgreSQL refused a write by ("" when it names none)."""
    orig = exc.orig
    name = getattr(orig, "constraint_name", None) or getattr(getattr(orig, "__cause__", None), "constraint_name", None)
    return str(name or "")
