"""The time bank's problem types (RFC 9457). Slugs are stable: clients switch on them."""

from __future__ import annotations

from typing import Self

from services.kit.problems import Problem


class NotAMember(Problem):
    slug = "timebank/not-a-member"
    status = 404
    title_zh = "尚未加入时间银行"
    title_en = "Not a time-bank member"


class AccountNotFound(Problem):
    slug = "timebank/account-not-found"
    status = 404
    title_zh = "账户不存在"
    title_en = "Account not found"

    @classmethod
    def of(cls, account_ids: list[str]) -> Self:
        return cls(("账户不存在", "Unknown account"), account_ids=sorted(account_ids))


class TransferNotFound(Problem):
    slug = "timebank/transfer-not-found"
    status = 404
    title_zh = "转账记录不存在"
    title_en = "Transfer not found"


class CareRequestNotFound(Problem):
    slug = "timebank/care-request-not-found"
    status = 404
    title_zh = "服务需求不存在"
    title_en = "Care request not found"


class InsufficientBalance(Problem):
    slug = "timebank/insufficient-balance"
    status = 409
    title_zh = "时间余额不足"
    title_en = "Insufficient balance"

    @classmethod
    def of(cls, available: int, needed: int) -> Self:
        return cls(
            (f"可用余额 {available} 分钟，不足 {needed} 分钟", f"Available {available} minutes, needs {needed}"),
            available_minutes=available,
            needed_minutes=needed,
        )


class BelowWithdrawalAge(Problem):
    slug = "timebank/below-withdrawal-age"
    status = 409
    title_zh = "未达到支取年龄"
    title_en = "Below the withdrawal age"


class AgeNotVerified(Problem):
    slug = "timebank/age-not-verified"
    status = 409
    title_zh = "年龄尚未经社工核实"
    title_en = "Age not yet verified by a community worker"


class BelowFirstWithdrawalMinimum(Problem):
    slug = "timebank/below-first-withdrawal-minimum"
    status = 409
    title_zh = "首次支取前余额未达到最低要求"
    title_en = "Balance below the minimum required before a first withdrawal"


class NotAVerifiedRelative(Problem):
    slug = "timebank/not-a-verified-relative"
    status = 409
    title_zh = "对方不是经核实的亲属"
    title_en = "Not a verified relative"


class TransferIdConflict(Problem):
    slug = "timebank/transfer-id-conflict"
    status = 409
    title_zh = "转账编号已用于另一笔不同的转账"
    title_en = "The transfer id was used for a different transfer"


class AlreadyResolved(Problem):
    slug = "timebank/already-resolved"
    status = 409
    title_zh = "该待确认转账已处理"
    title_en = "The pending transfer was already posted or voided"


class NotPending(Problem):
    slug = "timebank/not-pending"
    status = 409
    title_zh = "不是待确认的转账"
    title_en = "Not a pending transfer"


class NotAllowedToResolve(Problem):
    slug = "timebank/not-allowed-to-resolve"
    status = 403
    title_zh = "无权确认或异议此服务"
    title_en = "Not allowed to confirm or dispute this service"

    @classmethod
    def volunteer(cls) -> Self:
        """The volunteer who served asked to confirm or dispute their own service."""
        return cls(("服务提供者不能确认自己的服务", "The volunteer who served cannot confirm it"))


class MinutesExceedPending(Problem):
    slug = "timebank/minutes-exceed-pending"
    status = 422
    title_zh = "确认时长超过登记时长"
    title_en = "Confirmed minutes exceed the logged minutes"

    @classmethod
    def of(cls, pending_minutes: int) -> Self:
        return cls((f"最多可确认 {pending_minutes} 分钟", f"At most {pending_minutes} minutes"), pending_minutes=pending_minutes)


class CheckoutBeforeCheckin(Problem):
    slug = "timebank/checkout-before-checkin"
    status = 422
    title_zh = "签退时间早于签到时间"
    title_en = "Check-out is not after check-in"


class ServiceTooShort(Problem):
    slug = "timebank/service-too-short"
    status = 422
    title_zh = "服务时长不足一分钟"
    title_en = "The service lasted less than a minute"


class TimeInFuture(Problem):
    slug = "timebank/time-in-future"
    status = 422
    title_zh = "时间不能晚于当前时间"
    title_en = "The time is in the future"


class CheckinBeforeAcceptance(Problem):
    slug = "timebank/check-in-before-acceptance"
    status = 422
    title_zh = "签到时间早于接单时间"
    title_en = "Check-in is before the request was accepted"


class CareRequestTaken(Problem):
    slug = "timebank/care-request-taken"
    status = 409
    title_zh = "该需求已被其他志愿者接单"
    title_en = "Another volunteer already accepted this request"


class WrongCareRequestState(Problem):
    slug = "timebank/wrong-care-request-state"
    status = 409
    title_zh = "服务需求当前状态不允许此操作"
    title_en = "The care request is not in a state that allows this"

    @classmethod
    def of(cls, current: str, action: str) -> Self:
        return cls(
            (f"状态 {current} 不允许 {action}", f"{action} is not allowed in state {current}"),
            care_status=current,
            action=action,
        )


class NotAVolunteer(Problem):
    slug = "timebank/not-a-volunteer"
    status = 403
    title_zh = "尚未登记为志愿者"
    title_en = "Not enrolled as a volunteer"


class NotAnElder(Problem):
    slug = "timebank/not-an-elder"
    status = 409
    title_zh = "该成员未登记为受助老人"
    title_en = "The member is not enrolled as an elder"


class CannotServeSelf(Problem):
    slug = "timebank/cannot-serve-self"
    status = 409
    title_zh = "不能为自己提供服务"
    title_en = "A volunteer cannot serve their own request"


class NotReversible(Problem):
    slug = "timebank/not-reversible"
    status = 409
    title_zh = "该转账不能冲正"
    title_en = "This transfer cannot be reversed"


class AlreadyReversed(Problem):
    slug = "timebank/already-reversed"
    status = 409
    title_zh = "该转账已冲正"
    title_en = "This transfer was already reversed"


class SameAccount(Problem):
    slug = "timebank/same-account"
    status = 422
    title_zh = "借方与贷方不能是同一账户"
    title_en = "Debit and credit accounts must differ"


class LinkedTransferFailed(Problem):
    slug = "timebank/linked-transfer-failed"
    status = 409
    title_zh = "批量转账中有一笔失败，全部未执行"
    title_en = "A transfer in the linked batch failed; none was applied"


class WrongAccountKind(Problem):
    slug = "timebank/wrong-account-kind"
    status = 422
    title_zh = "账户类型与转账种类不符"
    title_en = "The accounts do not fit this kind of transfer"


PROBLEMS_BY_SLUG: dict[str, type[Problem]] = {
    cls.slug: cls
    for cls in (
        InsufficientBalance,
        BelowWithdrawalAge,
        AgeNotVerified,
        BelowFirstWithdrawalMinimum,
        NotAVerifiedRelative,
        AccountNotFound,
        NotAMember,
        NotAllowedToResolve,
        AlreadyResolved,
        NotPending,
        MinutesExceedPending,
        NotReversible,
        AlreadyReversed,
        SameAccount,
        LinkedTransferFailed,
        TransferNotFound,
        NotAnElder,
        WrongAccountKind,
    )
}
