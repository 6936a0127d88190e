"""Scenario 5: the city's sync client pulls de-identified feeds through the gateway's /city/v1/ door."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.e2e.conftest import Community, wait_until

HASH = re.compile(r"^[0-9a-f]{32}$")


async def test_the_city_pulls_de_identified_records_in_order_with_a_cursor(community: Community) -> None:
    elder = await community.register_resident("林奶奶", "elder")
    first = await community.register_resident("吴晓明", "volunteer")
    second = await community.register_resident("高志远", "volunteer")
    people = [elder, first, second]
    worker = await community.staff("community_worker")

    # A small time-bank history: three services paid from the pool in one batch, one later reversed.
    for person, enrol in ((elder, {"elder": True}), (first, {"volunteer": True}), (second, {"volunteer": True})):
        await community.call("POST", "/api/timebank/members", worker.auth, {"member_id": person.id, **enrol}, expected=(201,))
    await community.call(
        "POST",
        "/api/timebank/transfers/funding",
        worker.auth,
        {"id": str(uuid.uuid4()), "minutes": 600, "reason": "街道拨付"},
        expected=(201,),
    )
    pool = (await community.call("GET", "/api/timebank/pool", worker.auth))["pool"]["id"]
    accounts = {
        p.id: (await community.call("GET", f"/api/timebank/members/{p.id}", worker.auth))["account_id"] for p in (first, second)
    }
    legs = [(first, 60, "meal"), (second, 45, "cleaning"), (first, 30, "shopping")]
    ids = [str(uuid.uuid4()) for _ in legs]
    await community.call(
        "POST",
        "/api/timebank/transfers/batch",
        worker.auth,
        {
            "transfers": [
                {
                    "id": tid,
                    "kind": "service",
                    "debit_account_id": pool,
                    "credit_account_id": accounts[v.id],
                    "minutes": minutes,
                    "service_type": kind,
                    "elder_id": elder.id,
                }
                for tid, (v, minutes, kind) in zip(ids, legs, strict=True)
            ]
        },
        expected=(201,),
    )
    await community.call(
        "POST",
        f"/api/timebank/transfers/{ids[2]}/reversal",
        worker.auth,
        {"id": str(uuid.uuid4()), "reason": "重复登记"},
        expected=(201,),
    )

    # The city client: credentials at the gateway, registered in citysync under the same subject,
    # granted the time-bank and property feeds (not parking).
    subject, city = await community.machine("city-dsp", "city_sync")
    await community.call(
        "POST", "/api/citysync/consumers", worker.auth, {"id": subject, "name": "丽水市公共数据平台"}, expected=(201,)
    )
    for scene in ("timebank", "property"):
        await community.call("POST", f"/api/citysync/consumers/{subject}/grants", worker.auth, {"scene": scene}, expected=(201,))

    async def pull(scene: str, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        page: dict[str, Any] = await community.call("GET", f"/city/v1/feeds/{scene}", city, params=params)
        return page

    async def all_arrived() -> bool:
        return len((await pull("timebank"))["records"]) == 4

    await wait_until(all_arrived, what="four time-bank records in the city feed")

    # Pages of two, resumed by the cursor: seq 1..4 without gaps, each record once.
    one = await pull("timebank", limit=2)
    two = await pull("timebank", after=one["next_cursor"], limit=2)
    three = await pull("timebank", after=two["next_cursor"], limit=2)
    assert (one["has_more"], two["has_more"], three["records"], three["has_more"]) == (True, False, [], False)
    assert one["next_cursor"] == "2" and two["next_cursor"] == "4"
    # The region code is the community's, as its platform administrator set it at the gateway; a
    # caller's own header never reaches citysync.
    assert one["region_code"] == "331102"
    forged = await community.client.get("/city/v1/feeds/timebank", headers=city | {"x-community-region": "110101"})
    assert forged.status_code == 200 and forged.json()["region_code"] == "331102", forged.text
    records = one["records"] + two["records"]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert {r["community"] for r in records} == {community.id}
    confirmed = [r["data"] for r in records if r["record_type"] == "service_confirmed"]
    reversed_ = [r for r in records if r["record_type"] == "transfer_reversed"]
    assert sorted(d["transfer_id"] for d in confirmed) == sorted(ids)
    assert {(d["transfer_id"], d["minutes"], d["service_type"]) for d in confirmed} == {
        (tid, minutes, kind) for tid, (_, minutes, kind) in zip(ids, legs, strict=True)
    }
    assert len(reversed_) == 1 and reversed_[0]["data"]["reverses_transfer_id"] == ids[2]
    # A reversal follows the service it corrects (same Kafka key, same order in the feed).
    assert reversed_[0]["seq"] > next(r["seq"] for r in records if r["data"].get("transfer_id") == ids[2])

    # De-identified: people's ids are this consumer's stable pseudonyms; names, phones, raw ids absent.
    by_transfer = {d["transfer_id"]: d for d in confirmed}
    first_hashes = {by_transfer[ids[0]]["volunteer_id"], by_transfer[ids[2]]["volunteer_id"]}
    assert len(first_hashes) == 1 and HASH.match(next(iter(first_hashes)))
    assert by_transfer[ids[1]]["volunteer_id"] not in first_hashes
    assert len({d["elder_id"] for d in confirmed}) == 1
    assert "reason" not in reversed_[0]["data"]  # free text stays inside the platform
    text = str(records)
    for person in people:
        for raw in (person.id, person.name, person.phone, person.household_id):
            assert raw not in text

    # The property feed carries the registrations, with phones hashed and names dropped.
    async def registrations() -> list[dict[str, Any]]:
        page = await pull("property")
        return [r for r in page["records"] if r["record_type"] == "resident_registered"]

    async def registered() -> bool:
        return len(await registrations()) == 3

    await wait_until(registered, what="three registrations in the property feed")
    found = await registrations()
    assert all(HASH.match(r["data"]["phone"]) and "name" not in r["data"] for r in found)
    text = str((await pull("property"))["records"])
    for person in people:
        for raw in (person.id, person.name, person.phone, person.household_id):
            assert raw not in text

    # Ungranted feed: 404, through the same door; a resident token is not a city client.
    r = await community.client.get("/city/v1/feeds/parking", headers=city)
    assert r.status_code == 404 and r.json()["type"].endswith("citysync/feed-not-found"), r.text
    resident = await community.login(first)
    r = await community.client.get("/city/v1/feeds/timebank", headers=resident.auth)
    assert r.status_code == 403, r.text
    # One public path per route: the feeds are not also served under /api/, nor the rest under /city/v1/.
    for path, caller in (
        ("/api/citysync/feeds/timebank", city),
        ("/api/citysync/feeds", city),
        ("/city/v1/consumers", worker.auth),
    ):
        r = await community.client.get(path, headers=caller)
        assert r.status_code == 404 and r.json()["type"].endswith("gateway/not-routed"), (path, r.text)
    # Every pull was recorded in the data-sharing register.
    pulls = await community.call("GET", "/api/citysync/pulls", worker.auth, params={"consumer_id": subject, "scene": "timebank"})
    assert len(pulls["items"]) >= 4 and {p["consumer_id"] for p in pulls["items"]} == {subject}
