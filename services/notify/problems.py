"""Notify's problems (stable `type` slugs; titles in zh-CN and en)."""

from __future__ import annotations

from services.kit.problems import Problem


class NotificationNotFound(Problem):
    slug = "notify/notification-not-found"
    status = 404
    title_zh = "通知不存在"
    title_en = "Notification not found"


class TooManyStreams(Problem):
    slug = "notify/too-many-streams"
    status = 429
    title_zh = "实时连接过多"
    title_en = "Too many open streams"
