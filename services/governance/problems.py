"""Governance's problem types (stable `type` slugs; never renamed once published)."""

from __future__ import annotations

from services.kit.problems import Problem


class RuleNotFound(Problem):
    slug = "governance/rule-not-found"
    status = 404
    title_zh = "积分规则不存在"
    title_en = "Earning rule not found"


class RewardNotFound(Problem):
    slug = "governance/reward-not-found"
    status = 404
    title_zh = "兑换项目不存在"
    title_en = "Reward not found"


class RedemptionNotFound(Problem):
    slug = "governance/redemption-not-found"
    status = 404
    title_zh = "兑换记录不存在"
    title_en = "Redemption not found"


class AwardNotFound(Problem):
    slug = "governance/award-not-found"
    status = 404
    title_zh = "奖惩记录不存在"
    title_en = "Award not found"


class HouseholdNotFound(Problem):
    slug = "governance/household-not-found"
    status = 404
    title_zh = "家庭不存在"
    title_en = "Household not found"


class CodeTaken(Problem):
    slug = "governance/code-taken"
    status = 409
    title_zh = "编码已被使用"
    title_en = "The code is already used in this community"


class NotACheckinRule(Problem):
    slug = "governance/not-a-checkin-rule"
    status = 422
    title_zh = "该规则不接受签到"
    title_en = "The rule does not take check-ins"


class CheckinCodeInvalid(Problem):
    slug = "governance/checkin-code-invalid"
    status = 422
    title_zh = "签到码无效或已过期"
    title_en = "The check-in code is unknown or not valid today"


class RuleInactive(Problem):
    slug = "governance/rule-inactive"
    status = 409
    title_zh = "积分规则未启用或不在有效期内"
    title_en = "The rule is switched off or outside its validity window"


class CapReached(Problem):
    slug = "governance/cap-reached"
    status = 409
    title_zh = "已达到本周期的积分上限"
    title_en = "The resident reached the rule's cap for this period"


class BudgetExhausted(Problem):
    slug = "governance/budget-exhausted"
    status = 409
    title_zh = "社区积分预算不足"
    title_en = "The community's points budget is exhausted"


class InsufficientPoints(Problem):
    slug = "governance/insufficient-points"
    status = 409
    title_zh = "积分不足"
    title_en = "Not enough points"


class RewardInactive(Problem):
    slug = "governance/reward-inactive"
    status = 409
    title_zh = "兑换项目未上架"
    title_en = "The reward is not available now"


class OutOfStock(Problem):
    slug = "governance/out-of-stock"
    status = 409
    title_zh = "库存不足"
    title_en = "Out of stock"


class ResidentLimitExceeded(Problem):
    slug = "governance/resident-limit-exceeded"
    status = 409
    title_zh = "超过每户居民兑换上限"
    title_en = "Over the per-resident limit for this reward"


class RedemptionNotOpen(Problem):
    slug = "governance/redemption-not-open"
    status = 409
    title_zh = "该兑换已完成或已释放"
    title_en = "The redemption is already captured or released"


class AwardNotPending(Problem):
    slug = "governance/award-not-pending"
    status = 409
    title_zh = "该奖惩已处理"
    title_en = "The award is not waiting for approval"


class SelfApproval(Problem):
    slug = "governance/self-approval"
    status = 403
    title_zh = "不能审批自己提交的奖惩"
    title_en = "A second community worker must approve"


class DecisionNotFound(Problem):
    slug = "governance/decision-not-found"
    status = 404
    title_zh = "表决事项不存在"
    title_en = "Decision not found"


class DecisionNotOpen(Problem):
    slug = "governance/decision-not-open"
    status = 409
    title_zh = "表决未开始或已结束"
    title_en = "The decision is not open for ballots now"


class DecisionAlreadyOpened(Problem):
    slug = "governance/decision-already-opened"
    status = 409
    title_zh = "表决事项已开启"
    title_en = "The decision was already opened"


class NotOnRoll(Problem):
    slug = "governance/not-on-roll"
    status = 403
    title_zh = "不在本次表决名册中"
    title_en = "Not on this decision's roll (owners' decisions are for owners)"


class NotAProxy(Problem):
    slug = "governance/not-a-proxy"
    status = 403
    title_zh = "未登记授权委托"
    title_en = "No recorded authorisation to vote for this owner"


class BallotAlreadyCast(Problem):
    slug = "governance/ballot-already-cast"
    status = 409
    title_zh = "已投票，不能更改"
    title_en = "A ballot was already cast for this voter; it is final"


class UnknownOption(Problem):
    slug = "governance/unknown-option"
    status = 422
    title_zh = "选项不存在"
    title_en = "The option is not one of the decision's"


class BallotsSecret(Problem):
    slug = "governance/ballots-secret"
    status = 403
    title_zh = "本次表决不公开投票人"
    title_en = "This decision's ballots are not shown by name"


class PledgeOfferNotFound(Problem):
    slug = "governance/pledge-offer-not-found"
    status = 404
    title_zh = "集体选购项目不存在"
    title_en = "Pledge offer not found"


class PledgeOfferClosed(Problem):
    slug = "governance/pledge-offer-closed"
    status = 409
    title_zh = "认购已截止"
    title_en = "The offer takes no more pledges (its deadline passed or it lapsed)"


class PledgeNotFound(Problem):
    slug = "governance/pledge-not-found"
    status = 404
    title_zh = "本户未认购此项目"
    title_en = "Your household has no pledge to this offer"


class PledgeOrdered(Problem):
    slug = "governance/pledge-ordered"
    status = 409
    title_zh = "已达成团，认购已转为订单，不能撤回"
    title_en = "The offer reached its minimum: the pledge is an order now and can no longer be withdrawn"


class NoHousehold(Problem):
    slug = "governance/no-household"
    status = 403
    title_zh = "未登记住户，不能认购"
    title_en = "Only a resident registered in a household may pledge"
