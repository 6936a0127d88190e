"""Security's problems (stable `type` slugs; titles in zh-CN and en)."""

from __future__ import annotations

from services.kit.problems import Problem


class DeviceNotFound(Problem):
    slug = "security/device-not-found"
    status = 404
    title_zh = "设备不存在"
    title_en = "Device not found"


class DuplicateDevice(Problem):
    slug = "security/duplicate-device"
    status = 409
    title_zh = "设备已登记"
    title_en = "Device already registered"


class UnknownDevice(Problem):
    slug = "security/unknown-device"
    status = 403
    title_zh = "未登记的设备"
    title_en = "This device is not registered in the community"


class PassNotFound(Problem):
    slug = "security/pass-not-found"
    status = 404
    title_zh = "通行证不存在"
    title_en = "Pass not found"


class InvalidPassWindow(Problem):
    slug = "security/invalid-pass-window"
    status = 422
    title_zh = "通行时间段无效"
    title_en = "Invalid pass window"


class NotAResident(Problem):
    slug = "security/not-a-resident"
    status = 403
    title_zh = "未登记为本社区住户"
    title_en = "Not a registered resident of this community"


class BatchTooLarge(Problem):
    slug = "security/batch-too-large"
    status = 413
    title_zh = "批量过大"
    title_en = "Batch too large"


class WatchNotFound(Problem):
    slug = "security/watch-not-found"
    status = 404
    title_zh = "关怀看护不存在"
    title_en = "Watch not found"


class WatchExists(Problem):
    slug = "security/watch-exists"
    status = 409
    title_zh = "该老人已开启关怀看护"
    title_en = "This elder already has a watch"


class InvalidAlarm(Problem):
    slug = "security/invalid-alarm"
    status = 422
    title_zh = "设备不能上报该类报警"
    title_en = "A device cannot raise this kind of alarm"


class AlarmNotFound(Problem):
    slug = "security/alarm-not-found"
    status = 404
    title_zh = "报警不存在"
    title_en = "Alarm not found"
