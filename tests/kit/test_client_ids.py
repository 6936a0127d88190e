"""One client-id rule: the gateway registers a machine client by the id that citysync (a city
consumer) and parking (a gate device) know it by, so all three accept exactly the same ids."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.schemas import ClientCredentialsGrant
from services.citysync.schemas import ConsumerCreate
from services.parking.schemas import GateDeviceCreate

IDS: list[tuple[str, bool]] = [
    ("lishui-data", True),
    ("gate.north_1", True),
    ("abc", True),
    ("a" * 64, True),
    ("ab", False),
    ("a" * 65, False),
    ("-gate", False),
    ("Gate-North", False),
    ("gate north", False),
    ("gate\x00", False),
    (str(uuid.uuid4()), False),
    (uuid.uuid4().hex, False),
]


def accepted_by_gateway(client_id: str) -> bool:
    body: dict[str, Any] = {"grant_type": "client_credentials", "community": "c1", "client_id": client_id, "client_secret": "s"}
    return _valid(lambda: ClientCredentialsGrant.model_validate(body))


def accepted_by_citysync(client_id: str) -> bool:
    return _valid(lambda: ConsumerCreate.model_validate({"id": client_id, "name": "市数据平台"}))


def accepted_by_parking(client_id: str) -> bool:
    return _valid(lambda: GateDeviceCreate.model_validate({"id": client_id, "name": "北门道闸"}))


def _valid(build: Any) -> bool:
    try:
        build()
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("client_id", "valid"), IDS)
def test_the_gateway_citysync_and_parking_accept_the_same_client_ids(client_id: str, valid: bool) -> None:
    assert (accepted_by_gateway(client_id), accepted_by_citysync(client_id), accepted_by_parking(client_id)) == (valid,) * 3
