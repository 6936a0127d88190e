"""API models of service pledges (集体选购)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.kit.inputs import RequestBody, Text, Timestamp


class PledgeOfferCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "老年助餐 每周五天午餐",
                    "provider": "邻里食堂",
                    "service_code": "meal-weekday-lunch",
                    "price_fen": 1500,
                    "min_households": 20,
                    "deadline": "2026-12-20T20:00:00+08:00",
                }
            ]
        }
    )
    title: Annotated[Text, Field(min_length=1, max_length=200)]
    provider: Annotated[Text, Field(min_length=1, max_length=100)]
    service_code: Annotated[
        str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="The property catalogue code it opens as")
    ]
    price_fen: Annotated[int, Field(gt=0, le=100_000_000, description="Each household's order; payable by money or points")]
    min_households: Annotated[int, Field(ge=1, le=100_000)]
    deadline: Timestamp = Field(description="Pledges are taken until then (Asia/Shanghai or UTC)")


class PledgeOfferPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    title: str
    provider: str
    service_code: str
    price_fen: int
    min_households: int
    deadline: datetime
    status: str = Field(description="`open`, `reached` (orders placed), `lapsed` (nothing charged)")
    settled_at: datetime | None
    households: int = Field(0, description="Households that pledged")
    my_household_pledged: bool | None = Field(None, description="Null when the caller has no household")


class PledgePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    offer_id: uuid.UUID
    household_id: str
    resident_id: str
    pledged_at: datetime
