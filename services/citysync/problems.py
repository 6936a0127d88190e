"""citysync's problem types (RFC 9457). The slugs are public: clients switch on them."""

from __future__ import annotations

from services.kit.problems import Problem


class FeedNotFound(Problem):
    """Unknown scene, or a feed the consumer has not been granted (404: we do not say which)."""

    slug = "citysync/feed-not-found"
    status = 404
    title_zh = "数据目录不存在或未授权"
    title_en = "Feed not found or not granted"


class ConsumerRevoked(Problem):
    slug = "citysync/consumer-revoked"
    status = 403
    title_zh = "数据使用方已被撤销"
    title_en = "This data consumer has been revoked"


class ConsumerUnknown(Problem):
    slug = "citysync/consumer-unknown"
    status = 403
    title_zh = "数据使用方未登记"
    title_en = "This client is not a registered data consumer"


class ConsumerNotFound(Problem):
    slug = "citysync/consumer-not-found"
    status = 404
    title_zh = "数据使用方不存在"
    title_en = "Data consumer not found"


class ConsumerExists(Problem):
    slug = "citysync/consumer-exists"
    status = 409
    title_zh = "数据使用方已存在"
    title_en = "A data consumer with this id already exists"


class GrantExists(Problem):
    slug = "citysync/grant-exists"
    status = 409
    title_zh = "该数据目录已授权"
    title_en = "The feed is already granted to this consumer"


class GrantNotFound(Problem):
    slug = "citysync/grant-not-found"
    status = 404
    title_zh = "授权不存在"
    title_en = "No active grant of this feed"


class InvalidFeedCursor(Problem):
    slug = "citysync/invalid-cursor"
    status = 400
    title_zh = "游标无效"
    title_en = "Invalid feed cursor"


class ConsumerInactive(Problem):
    slug = "citysync/consumer-inactive"
    status = 409
    title_zh = "数据使用方已撤销，不能再授权"
    title_en = "The data consumer is revoked and cannot be granted feeds"
