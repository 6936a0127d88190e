"""The demo community every service seeds in `make run`: one place for its names and ids.

Ids are uuid5 values derived from stable names, so each service's seed can refer to the same
residents, buildings and stewards without asking another service. Property owns the registry and
seeds it first; the other services seed their own data for the same people.
Names and phone numbers are invented (phone numbers use the 170 prefix reserved for virtual operators).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

COMMUNITY = "lishui-baiyun"
COMMUNITY_NAME = "白云未来社区 (demo)"
# 丽水市莲都区: the administrative division code the city's data platform files the demo's feed under.
REGION_CODE = "331102"
_NS = uuid.UUID("6f1c2a52-9a0e-4e55-8a0b-5d8f3b1f0c01")


def demo_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


@dataclass(frozen=True)
class Building:
    id: str
    code: str
    name: str


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    phone: str
    building: str  # building code
    unit: str
    birth_date: date
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    username: str
    password: str
    roles: tuple[str, ...]
    buildings: tuple[str, ...] = ()
    backup_for: tuple[str, ...] = ()


BUILDINGS = [Building(demo_id("building", c), c, n) for c, n in [("B1", "1幢"), ("B2", "2幢"), ("B3", "3幢"), ("B4", "4幢")]]

_PEOPLE = [
    # name, building, unit, birth date, roles
    ("王秀英", "B1", "101", date(1941, 3, 2), ("resident", "elder")),
    ("李桂兰", "B1", "102", date(1948, 7, 19), ("resident", "elder")),
    ("张建国", "B2", "201", date(1952, 11, 5), ("resident", "elder", "volunteer")),
    ("陈志强", "B2", "202", date(1958, 1, 23), ("resident", "volunteer")),
    ("刘晓燕", "B3", "301", date(1986, 9, 9), ("resident", "volunteer")),
    ("赵磊", "B3", "302", date(1990, 4, 14), ("resident", "volunteer")),
    ("孙丽", "B4", "401", date(1979, 12, 1), ("resident",)),
    ("周杰", "B4", "402", date(1995, 6, 30), ("resident", "volunteer")),
]
RESIDENTS = [
    Person(demo_id("resident", n), n, f"1700000{i:04d}", b, u, d, r) for i, (n, b, u, d, r) in enumerate(_PEOPLE, start=1)
]

STAFF = [
    Staff(demo_id("staff", "steward-wu"), "吴管家", "steward.wu", "demo-steward-1", ("steward",), ("B1", "B2"), ("B3", "B4")),
    Staff(
        demo_id("staff", "steward-zheng"), "郑管家", "steward.zheng", "demo-steward-2", ("steward",), ("B3", "B4"), ("B1", "B2")
    ),
    Staff(demo_id("staff", "admin-qian"), "钱经理", "admin.qian", "demo-admin", ("property_admin",)),
    Staff(demo_id("staff", "worker-feng"), "冯社工", "worker.feng", "demo-worker", ("community_worker",)),
    Staff(demo_id("staff", "worker-he"), "何社工", "worker.he", "demo-worker-2", ("community_worker",)),
    # The security guard (保安): alarms, the doors' events and today's visitors; reads the alarms' tickets.
    Staff(demo_id("staff", "guard-jiang"), "蒋保安", "guard.jiang", "demo-guard", ("security_guard",)),
]

GATE_DEVICES = [("gate-north", "北门道闸"), ("gate-south", "南门道闸")]
CITY_SYNC_CLIENTS = [("city-lishui-dsp", "丽水市公共数据平台")]
# The security service's devices (machine clients of the gateway too): id, building code, kind, name, household unit.
SECURITY_DEVICES = [
    ("door-b1-east", "B1", "door", "1幢东门门禁", None),
    ("door-b2-east", "B2", "door", "2幢东门门禁", None),
    ("smoke-b1-stair", "B1", "smoke", "1幢楼梯间烟感", None),
    ("pir-b1-101", "B1", "sensor", "1幢101室人体感应", "101"),
]
# 王秀英's son, the relative who consented to her inactivity watch (he lives elsewhere: no household here).
RELATIVE_OF_WANG = demo_id("relative", "王秀英-son")
# 刘晓燕's visitor drives: her pass carries this plate, so the demo gates let the car in without a booking.
VISITOR_PLATE = "浙K8V520"
VISITOR_HOST = "刘晓燕"


def resident(name: str) -> Person:
    return next(p for p in RESIDENTS if p.name == name)


def staff(username: str) -> Staff:
    return next(s for s in STAFF if s.username == username)
