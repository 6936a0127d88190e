"""The kit's own tables, present in every service's database (created by its first migration)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.kit.db import new_metadata

kit_metadata = new_metadata()

outbox = Table(
    "kit_outbox",
    kit_metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("subject", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("data", JSONB, nullable=False),
    Column("traceparent", Text),
    Column("tracestate", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    # Where the broker acknowledged the row: a lost partition is re-sent from the first offset it
    # no longer holds.
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    # An event the broker can never accept (too large) is set aside, its reason in `last_error`,
    # so the events behind it flow; the operator sees it in `outbox-status`.
    Column("set_aside_at", DateTime(timezone=True)),
)
# The relay's claim query reads only unsent rows in id order; keep that index small.
Index("ix_kit_outbox_unsent", outbox.c.id, postgresql_where=outbox.c.sent_at.is_(None))
Index("ix_kit_outbox_occurred_at", outbox.c.occurred_at)
Index("ix_kit_outbox_partition_offset", outbox.c.topic, outbox.c.kafka_partition, outbox.c.kafka_offset)

# The relay's memory of what the broker acknowledged, per partition of each of its topics (named
# without the deployment's namespace): `acked_offset` is the offset of the last acknowledged batch
# (its first event). A broker whose high watermark is not above it, or whose cluster id changes,
# has lost events, which the relay then sends again.
outbox_partitions = Table(
    "kit_outbox_partitions",
    kit_metadata,
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("acked_offset", BigInteger, nullable=False),
    Column("cluster_id", Text),
    Column("acked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("losses", Integer, nullable=False, server_default=text("0")),
    Column("last_loss_at", DateTime(timezone=True)),
    Column("last_loss", Text),
    PrimaryKeyConstraint("topic", "partition", name="pk_kit_outbox_partitions"),
)

inbox = Table(
    "kit_inbox",
    kit_metadata,
    Column("consumer_group", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer_group", "source", "event_id", name="pk_kit_inbox"),
)

idempotency_keys = Table(
    "kit_idempotency_keys",
    kit_metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("scope", "key", name="pk_kit_idempotency_keys"),
)

# One row per scheduled job and period that some replica claimed (services/kit/job_runs.py): the
# primary key is what makes a job run once per period however many replicas' schedulers race.
job_runs = Table(
    "kit_job_runs",
    kit_metadata,
    Column("job", Text, nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("replica", Text, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("job", "period_start", name="pk_kit_job_runs"),
)
