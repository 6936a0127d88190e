"""Turning events into notifications: the catalogue's rows for each event's type, each recipient told once.

Set-based, for a whole fetched batch at a time (one event is a batch of one): the directory is read
once for the batch's recipient rules, the recipients' profiles once, the templates are rendered in
Python, and every notification, its recipient's next numbers and its SMS delivery go in one
statement. It runs inside the consumer's transaction (the kit's inbox rows commit with it).

A recipient's notifications take the next numbers of their sequence under that sequence row's
lock (rows locked in one order, so two batches never deadlock), so one recipient's notifications
commit in number order. The commit carries each new notification of a live (small) batch, rendered
as its stream frame, to every replica's listener (`pg_notify`): a stream sends it without reading
it back; a backlog's batch wakes each recipient's streams once instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent, EventData
from services.notify.catalogue import KINDS_BY_TYPE, Kind, Recipient
from services.notify.directory import Known, Pair, read_known, relatives_copied, unzip
from services.notify.domain import Category, Channel, DeliveryStatus, Language, QuietHours, Template, render, sms_due_at
from services.notify.settings import Settings
from services.notify.wire import frame_payload, head_payload

# The channel `pg_notify` wakes streams on; the payload is `wire.frame_payload`'s.
WAKE_CHANNEL = "notify_inbox"

# Every new notification of a batch from one JSON array (one object per notification), with its
# recipient's next seq and its SMS delivery, in one statement. Duplicates of an (event, recipient)
# already told are skipped by the unique key (their seq is left unused: a stream skips gaps).
# JSON rather than an array per column: the driver checks every element of every array it encodes
# (thirteen per notification), which cost more CPU than PostgreSQL spends parsing the JSON.
# It returns each new notification's (recipient, seq, id) and each recipient's last number taken,
# from which `insert_all` knows the number each input row was given: as arrays in one row, not a
# row each (a backlog's batch is thousands). The batch's rows share their transaction's `now()`.
INSERT_NOTIFICATIONS = text(
    """
    WITH input AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS i(
            ord int, community text, recipient_id text, event_source text, event_id text, event_type text,
            kind text, category text, urgency text, title text, body text, sms_status text, sms_due timestamptz
        )
    ),
    counts AS (
        SELECT community, recipient_id, count(*) AS n FROM input GROUP BY community, recipient_id
    ),
    taken AS (
        INSERT INTO recipient_sequences AS s (community, recipient_id, last_seq)
        SELECT community, recipient_id, n FROM counts ORDER BY community, recipient_id
        ON CONFLICT (community, recipient_id) DO UPDATE SET last_seq = s.last_seq + excluded.last_seq
        RETURNING community, recipient_id, last_seq
    ),
    numbered AS (
        SELECT i.*, t.last_seq - c.n + row_number() OVER (PARTITION BY i.community, i.recipient_id ORDER BY i.ord) AS seq
        FROM input i JOIN counts c USING (community, recipient_id) JOIN taken t USING (community, recipient_id)
    ),
    made AS (
        INSERT INTO notifications
            (community, recipient_id, seq, event_source, event_id, event_type, kind, category, urgency, title, body)
        SELECT community, recipient_id, seq, event_source, event_id, event_type, kind, category, urgency, title, body
        FROM numbered ORDER BY community, recipient_id, seq
        ON CONFLICT (event_source, event_id, community, recipient_id) DO NOTHING
        RETURNING community, recipient_id, seq, id, created_at
    )
    SELECT
        (SELECT array_agg(community) FROM taken) AS taken_communities,
        (SELECT array_agg(recipient_id) FROM taken) AS taken_recipients,
        (SELECT array_agg(last_seq) FROM taken) AS last_seqs,
        array_agg(community) AS communities, array_agg(recipient_id) AS recipients, array_agg(seq) AS seqs,
        array_agg(id) AS ids, min(created_at) AS created_at
    FROM made
    """
)
# What a batch's SMS copies need once their notifications have ids (a second statement, only for
# batches with SMS): joining the insert's output back to its input by key is a join PostgreSQL
# cannot estimate (it would loop over every pair in a large batch).
INSERT_SMS = text(
    """
    INSERT INTO deliveries (notification_id, channel, status, attempts, next_attempt_at)
    SELECT id, 'sms', status, 0, due
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:dues AS timestamptz[])) AS d(id, status, due)
    """
)

PROFILES = text(
    """
    SELECT p.community, p.person_id, p.language, p.quiet_start, p.quiet_end, p.phone
    FROM unnest(CAST(:communities AS text[]), CAST(:people AS text[])) AS k(community, person_id)
    JOIN people p USING (community, person_id)
    """
)
SMS_OFF = text(
    f"""
    SELECT s.community, s.person_id, s.category
    FROM unnest(CAST(:communities AS text[]), CAST(:people AS text[])) AS k(community, person_id)
    JOIN preferences s USING (community, person_id)
    WHERE s.channel = '{Channel.sms.value}' AND NOT s.enabled
    """
)

WAKE = text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload")

# The title of a copy sent to a relative says it is one (the body still speaks to the member).
COPY_TITLE = Template("【家人副本】{title}", "[Family copy] {title}")


class Telling(NamedTuple):
    """One notification to be made: a kind of one event, for one person (a tuple: a backlog's batch
    makes thousands, and a frozen dataclass's constructor costs several times more)."""

    event: CloudEvent
    kind: Kind
    data: dict[str, Any]
    community: str
    person: str
    copy: bool = False


@dataclass(frozen=True)
class Profile:
    language: Language
    quiet: QuietHours
    phone: str | None
    sms_off: frozenset[str]  # categories whose SMS the person switched off


async def notify_event(session: AsyncSession, settings: Settings, event: CloudEvent) -> int:
    """Tell everyone the catalogue names for this event; returns how many notifications were new."""
    return await notify_events(session, settings, [event])


async def notify_events(session: AsyncSession, settings: Settings, events: list[CloudEvent]) -> int:
    """Tell everyone the catalogue names for these events, in their order; returns how many were new."""
    parsed = [(event, kinds, data_of(event, kinds[0].event)) for event in events if (kinds := KINDS_BY_TYPE.get(event.type, ()))]
    if not parsed:
        return 0
    wanted: list[tuple[Recipient, str, dict[str, Any]]] = [
        (recipient, str(data["community"]), data) for _, kinds, data in parsed for kind in kinds for recipient in kind.recipients
    ]
    known = await read_known(session, wanted)
    direct = [telling_directly(known, event, kinds, data) for event, kinds, data in parsed]
    members = {(t.community, t.person) for tellings in direct for t in tellings if t.kind.category is Category.timebank}
    relatives = await relatives_copied(session, members)
    tellings = [t for told in direct for t in with_copies(told, relatives)]
    profiles = await read_profiles(session, settings, tellings)
    inserted = await insert_all(session, settings, tellings, profiles)
    if inserted.new:
        await session.execute(WAKE, {"channel": WAKE_CHANNEL, "payloads": inserted.wakes})
    return inserted.new


def data_of(event: CloudEvent, model: type[EventData]) -> dict[str, Any]:
    """The event's data as its model reads it (checked, with times as datetimes), as a plain dict.
    The models are flat (no model inside a model, `test_event_data_models_are_flat`), so the
    model's attributes are that dict: `model_dump` would copy each value again, a microsecond an event."""
    return dict(vars(event.parse(model)))


# A live batch is small: each notification travels as its frame, so a stream sends it without a
# read. A backlog's batch wakes each recipient once, with their last number: a stream reads what
# it missed in one query, and the commit does not carry hundreds of frames nobody may be watching.
FRAMES_UP_TO = 64


def wake_payloads(made: Sequence[Any]) -> list[str]:
    if len(made) <= FRAMES_UP_TO:
        return [frame_payload(row) for row in made]
    return head_payloads((row.community, row.recipient_id, row.seq) for row in made)


def head_payloads(numbers: Iterable[tuple[str, str, int]]) -> list[str]:
    """Each recipient once, with the last of their new numbers."""
    last: dict[Pair, int] = {}
    for community, recipient, seq in numbers:
        if seq > last.get((community, recipient), 0):
            last[community, recipient] = seq
    return [head_payload(community, recipient, seq) for (community, recipient), seq in last.items()]


def telling_directly(known: Known, event: CloudEvent, kinds: tuple[Kind, ...], data: dict[str, Any]) -> list[Telling]:
    """Whom an event's kinds name. Several kinds may share an event type (a booking tells its booker
    and its owner); a person named by more than one is told once, by the first; no one of their own act."""
    community = str(data["community"])
    told: set[str] = set()
    tellings = []
    for kind in kinds:
        actor = data.get(kind.actor) if kind.actor else None
        for recipient in kind.recipients:
            for person in known.recipients(recipient, community, data):
                if person in told or person == actor:
                    continue
                told.add(person)
                tellings.append(Telling(event, kind, data, community, person))
    return tellings


def with_copies(tellings: list[Telling], relatives: dict[Pair, list[str]]) -> list[Telling]:
    """Copies to the verified relatives of those who asked for them, after everyone told directly
    (who is told once, as themselves). Time-bank messages only: a verified relative may already
    see the member's time-bank records, and nothing else of theirs."""
    told = {t.person for t in tellings}
    copies = []
    for t in tellings:
        if t.kind.category is not Category.timebank:
            continue
        actor = t.data.get(t.kind.actor) if t.kind.actor else None
        for relative in relatives.get((t.community, t.person), ()):
            if relative in told or relative == actor:
                continue
            told.add(relative)
            copies.append(Telling(t.event, t.kind, t.data, t.community, relative, copy=True))
    return [*tellings, *copies]


async def read_profiles(session: AsyncSession, settings: Settings, tellings: list[Telling]) -> dict[Pair, Profile]:
    """Language, quiet hours, phone and SMS switches of everyone told: one query (two with SMS kinds)."""
    pairs = {(t.community, t.person) for t in tellings}
    if not pairs:
        return {}
    communities, persons = unzip(pairs)
    rows = (await session.execute(PROFILES, {"communities": communities, "people": persons})).all()
    sms_off: dict[Pair, set[str]] = {}
    texted = {(t.community, t.person) for t in tellings if Channel.sms in t.kind.channels}
    if texted:
        communities, persons = unzip(texted)
        for row in (await session.execute(SMS_OFF, {"communities": communities, "people": persons})).all():
            sms_off.setdefault((row.community, row.person_id), set()).add(row.category)
    profiles: dict[Pair, Profile] = {}
    for row in rows:
        quiet = QuietHours(timezone=settings.community_timezone)
        if row.quiet_start is not None and row.quiet_end is not None:
            quiet = QuietHours(row.quiet_start, row.quiet_end, settings.community_timezone)
        pair = (row.community, row.person_id)
        profiles[pair] = Profile(Language(row.language), quiet, row.phone, frozenset(sms_off.get(pair, ())))
    # No row yet: the defaults (Chinese, the default quiet hours, no phone), with any switches set;
    # one shared object for all who have none (a backlog tells hundreds of people at a time).
    default = Profile(Language.zh, QuietHours(timezone=settings.community_timezone), None, frozenset())
    for pair in pairs - profiles.keys():
        off = sms_off.get(pair)
        profiles[pair] = default if not off else Profile(default.language, default.quiet, None, frozenset(off))
    return profiles


class Made(NamedTuple):
    """A notification the batch made: what its stream frame and its wake-up need."""

    id: int
    community: str
    recipient_id: str
    seq: int
    kind: str
    category: str
    urgency: str
    title: str
    body: str
    created_at: datetime
    read_at: None = None


class Inserted(NamedTuple):
    """What a batch's insert made: how many notifications, and the payloads that wake their streams."""

    new: int
    wakes: list[str]


async def insert_all(
    session: AsyncSession, settings: Settings, tellings: list[Telling], profiles: dict[Pair, Profile]
) -> Inserted:
    """Render every telling in its reader's language and insert them all; returns how many were
    new and what wakes their recipients' streams (`wake_payloads`)."""
    tz = ZoneInfo(settings.community_timezone)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for ord_, t in enumerate(tellings):
        profile = profiles[(t.community, t.person)]
        title = render(t.kind.title, t.data, profile.language, tz)
        if t.copy:
            title = render(COPY_TITLE, {"title": title}, profile.language, tz)
        texted = Channel.sms in t.kind.channels and t.kind.category.value not in profile.sms_off
        status = (DeliveryStatus.pending if profile.phone else DeliveryStatus.no_address) if texted else None
        rows.append(
            {
                "ord": ord_,
                "community": t.community,
                "recipient_id": t.person,
                "event_source": t.event.source,
                "event_id": t.event.id,
                "event_type": t.event.type,
                "kind": t.kind.name,
                "category": t.kind.category.value,
                "urgency": t.kind.urgency.value,
                "title": title,
                "body": render(t.kind.body, t.data, profile.language, tz),
                "sms_status": status.value if status else None,
                "sms_due": sms_due_at(t.kind.urgency, profile.quiet, now) if texted else None,
            }
        )
    if not rows:
        return Inserted(0, [])
    returned = (await session.execute(INSERT_NOTIFICATIONS, {"rows": orjson.dumps(rows).decode()})).one()
    numbers = list(zip(returned.communities or (), returned.recipients or (), returned.seqs or (), strict=True))
    inserted = dict(zip(numbers, returned.ids or (), strict=True))
    # A live batch's notifications travel whole, as their frames; a backlog's wake each recipient
    # with a number only, so its rows are matched to their numbers only for their SMS deliveries.
    live = len(inserted) <= FRAMES_UP_TO
    made: list[Made] = []
    sms: list[tuple[int, str, datetime]] = []
    if live or any(row["sms_status"] is not None for row in rows):
        # A recipient's rows took the numbers after (last - their count), in input order; those
        # whose (event, recipient) was told before were not inserted, so their numbers have no id.
        last = dict(zip(zip(returned.taken_communities, returned.taken_recipients, strict=True), returned.last_seqs, strict=True))
        counts = Counter((row["community"], row["recipient_id"]) for row in rows)
        given: Counter[Pair] = Counter()
        for row in rows:
            pair = (row["community"], row["recipient_id"])
            given[pair] += 1
            seq = last[pair] - counts[pair] + given[pair]
            new_id = inserted.get((*pair, seq))
            if new_id is None:
                continue
            if live:
                made.append(
                    Made(
                        id=new_id,
                        community=pair[0],
                        recipient_id=pair[1],
                        seq=seq,
                        kind=row["kind"],
                        category=row["category"],
                        urgency=row["urgency"],
                        title=row["title"],
                        body=row["body"],
                        created_at=returned.created_at,
                    )
                )
            if row["sms_status"] is not None:
                sms.append((new_id, row["sms_status"], row["sms_due"]))
    if sms:
        ids, statuses, dues = (list(column) for column in zip(*sms, strict=True))
        await session.execute(INSERT_SMS, {"ids": ids, "statuses": statuses, "dues": dues})
    if not live:
        return Inserted(len(inserted), head_payloads(numbers))
    made.sort(key=lambda m: (m.community, m.recipient_id, m.seq))
    return Inserted(len(made), wake_payloads(made))
