"""The security scene: visitor passes, doors' batches of accesses and alarms become de-identified
records, and the day's figures count visitors, entries and alarms by kind; nothing names a person
or a household."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.citysync import statistics
from services.kit.envelope import CloudEvent
from services.security.events import AccessEntry, AccessRecorded, AlarmAcknowledged, AlarmRaised, PassIssued
from tests.citysync import factory
from tests.citysync.conftest import Community, ingest_all

SOURCE = "/services/security"


def security_events(community: str, at: datetime) -> list[CloudEvent]:
    window = {"valid_from": at, "valid_until": at + timedelta(hours=4), "max_entries": 2, "has_plate": True}
    passes = [PassIssued(pass_id=f"vp-{i}", community=community, building_id="b1", **window) for i in range(3)]
    entries = [AccessEntry(direction=d, credential_kind="card", occurred_at=at) for d in ("in", "in", "out", "activity")]
    batch = AccessRecorded(
        community=community, device_id="door-1", building_id="b1", entries=entries, in_count=2, out_count=1, activity_count=1
    )
    alarms = [
        AlarmRaised(
            alarm_id=f"al-{kind}",
            community=community,
            kind=kind,
            building_id="b1",
            device_id=None,
            steward_id="steward-1",
            relative_id="son-of-elder-13800001111",
            raised_at=at,
        )
        for kind in ("smoke", "inactivity", "inactivity")
    ]
    # Answered after 600 s, 30 s and 90 s: the day's median is 90 s.
    answers = [
        AlarmAcknowledged(
            alarm_id=a.alarm_id,
            community=community,
            kind=a.kind,
            building_id="b1",
            raised_at=at - timedelta(seconds=seconds),
            acknowledged_at=at,
            acknowledged_by="steward-2-13900002222",
            response_s=seconds,
        )
        for a, seconds in zip(alarms, (600, 30, 90), strict=True)
    ]
    return [
        factory.event(e.event_type, e.model_dump(mode="json"), key, SOURCE, at)
        for e, key in [
            *((p, p.pass_id) for p in passes),
            (batch, "door-1"),
            *((a, a.alarm_id) for a in alarms),
            *((a, a.alarm_id) for a in answers),
        ]
    ]


async def test_security_events_become_records_without_people_and_count_in_the_day(community: Community) -> None:
    at = datetime.now(UTC) - timedelta(days=2)
    await ingest_all(community.svc, security_events(community.id, at))
    headers = await community.register("city-security", scenes=["security", "stats"])
    records = await community.pull_all(headers, "security")
    assert sorted(r["record_type"] for r in records) == (
        ["accesses_recorded"] + ["alarm_answered"] * 3 + ["alarm_raised"] * 3 + ["visitor_pass_issued"] * 3
    )
    text = json.dumps(records, ensure_ascii=False)
    assert "son-of-elder" not in text and "13800001111" not in text and "steward-1" not in text
    assert "steward-2" not in text and "13900002222" not in text  # who answered stays inside
    batch = next(r["data"] for r in records if r["record_type"] == "accesses_recorded")
    assert batch == {
        "community": community.id,
        "device_id": "door-1",
        "building_id": "b1",
        "in_count": 2,
        "out_count": 1,
        "activity_count": 1,
    }
    async with community.svc.state.sessionmaker() as session:
        await statistics.publish_daily_statistics(session, now=datetime.now(UTC), grace=timedelta(hours=1))
    [day] = [r["data"] for r in await community.pull_all(headers, "stats")]
    names = ("visitor_passes", "entries", "alarms_raised", "alarms_smoke", "alarms_inactivity", "alarms_fire")
    figures = {k: day[k] for k in (*names, "alarms_answered", "median_alarm_response_s")}
    # The second inactivity alarm has its own id: two alarms (the security service raises one per incident).
    assert figures == {
        "visitor_passes": 3,
        "entries": 2,
        "alarms_raised": 3,
        "alarms_smoke": 1,
        "alarms_inactivity": 2,
        "alarms_fire": 0,
        "alarms_answered": 3,
        "median_alarm_response_s": 90,
    }
