"""Property's problems (stable `type` slugs; titles in zh-CN and en)."""

from __future__ import annotations

from services.kit.problems import Problem
from services.property.domain import ActionNotPermitted, BasicServiceIsFree, QuoteNotApproved, TransitionNotAllowed

__all__ = ["ActionNotPermitted", "BasicServiceIsFree", "QuoteNotApproved", "TransitionNotAllowed"]


class TicketNotFound(Problem):
    slug = "property/ticket-not-found"
    status = 404
    title_zh = "工单不存在"
    title_en = "Ticket not found"


class RecordNotFound(Problem):
    slug = "property/not-found"
    status = 404
    title_zh = "记录不存在"
    title_en = "Record not found"


class UnknownBuilding(Problem):
    slug = "property/unknown-building"
    status = 422
    title_zh = "楼栋不存在"
    title_en = "Unknown building"


class UnknownHousehold(Problem):
    slug = "property/unknown-household"
    status = 422
    title_zh = "住户家庭不存在"
    title_en = "Unknown household"


class UnknownStaff(Problem):
    slug = "property/unknown-staff"
    status = 422
    title_zh = "员工不存在或不是管家"
    title_en = "Unknown staff member, or not a steward"


class UnknownService(Problem):
    slug = "property/unknown-service"
    status = 422
    title_zh = "增值服务目录中没有该服务"
    title_en = "No such value-added service in the catalogue"


class AlreadyRegistered(Problem):
    slug = "property/already-registered"
    status = 409
    title_zh = "已登记 (编号、手机号或用户名重复)"
    title_en = "Already registered (duplicate id, phone or username)"


class ResidentNotRegistered(Problem):
    slug = "property/resident-not-registered"
    status = 403
    title_zh = "您尚未登记为本社区住户"
    title_en = "You are not registered as a resident of this community"


class DailyLimitReached(Problem):
    slug = "property/daily-limit-reached"
    status = 429
    title_zh = "今日报事次数已达上限"
    title_en = "Daily ticket limit reached"


class HurryTooSoon(Problem):
    slug = "property/hurry-too-soon"
    status = 429
    title_zh = "催单过于频繁"
    title_en = "Hurried too recently"


class NotAssignee(Problem):
    slug = "property/not-assignee"
    status = 403
    title_zh = "该工单不由您负责"
    title_en = "This ticket is assigned to another steward"


class AlreadyRated(Problem):
    slug = "property/already-rated"
    status = 409
    title_zh = "已评价"
    title_en = "Already rated"


class PhotoTooLarge(Problem):
    slug = "property/photo-too-large"
    status = 413
    title_zh = "照片超过大小限制"
    title_en = "Photo too large"


class PhotoNotImage(Problem):
    slug = "property/photo-not-image"
    status = 415
    title_zh = "只接受 JPEG、PNG 或 WebP 图片"
    title_en = "Only JPEG, PNG or WebP images are accepted"


class DirectUploadUnavailable(Problem):
    slug = "property/direct-upload-unavailable"
    status = 409
    title_zh = "当前存储不支持直传"
    title_en = "Direct upload not available"


class PhotoNotUploaded(Problem):
    slug = "property/photo-not-uploaded"
    status = 409
    title_zh = "照片尚未上传到存储"
    title_en = "The photo has not been uploaded to the store yet"


class PhotoUnavailable(Problem):
    slug = "property/photo-unavailable"
    status = 422
    title_zh = "照片不存在或已被使用"
    title_en = "Photo not found or already attached"


class NothingToPay(Problem):
    slug = "property/nothing-to-pay"
    status = 409
    title_zh = "该工单无需付款或已付款"
    title_en = "Nothing to pay on this ticket"


class PaymentDeclined(Problem):
    slug = "property/payment-declined"
    status = 402
    title_zh = "支付未成功"
    title_en = "Payment declined"
