"""Parking's HTTP routes: who may call them, the community's policy and its reports.

Routes parse, authorize, call one use case and shape the response; each route's docstring is its
OpenAPI summary and description. Here: what the route modules share (the role aliases, the payment
port and the weekly horizon as dependencies), the settings routes and the reports. Spots' and
windows' routes are in `spots_api`, the free-spot search and bookings' in `bookings_api`, the
gate's in `gate_api`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.inputs import Day
from services.kit.payments import PaymentProvider
from services.kit.problems import Forbidden, problem_responses
from services.parking import policy, reports
from services.parking import problems as p
from services.parking.domain import SPOT_ADMINS
from services.parking.schemas import CommunitySettingsBody, CommunitySettingsPublic, Earnings, Occupancy
from services.parking.settings import Settings

Staff = Annotated[Principal, require_roles("steward", "property_admin", "community_worker")]
SpotAdmin = Annotated[Principal, require_roles(*SPOT_ADMINS)]
PropertyAdmin = Annotated[Principal, require_roles("property_admin")]
GateDevice = Annotated[Principal, require_roles("gate_device")]


async def payment_provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payments
    return provider


async def weekly_horizon_days(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return settings.weekly_horizon_days


Payments = Annotated[PaymentProvider, Depends(payment_provider)]
Horizon = Annotated[int, Depends(weekly_horizon_days)]


settings_routes = APIRouter(tags=["settings"])
report_routes = APIRouter(tags=["reports"])


@settings_routes.get("/settings", response_model=CommunitySettingsPublic)
async def get_settings(principal: CurrentPrincipal, session: SessionDep) -> CommunitySettingsPublic:
    """The community's parking policy.

    Shares, public rate, hold minutes, minimum durations, refund policy, entry grace and walk-in block of the caller's
    community, with the defaults where its property_admin has set none. Anyone in the community may read it.
    """
    return (await policy.policy_for(session, principal.community)).public()


@settings_routes.put(
    "/settings",
    response_model=CommunitySettingsPublic,
    responses=problem_responses(p.InvalidSettings, Forbidden),
)
async def put_settings(body: CommunitySettingsBody, principal: PropertyAdmin, session: SessionDep) -> CommunitySettingsPublic:
    """Replace the community's parking policy.

    Every field is replaced; the owner's and property's shares together may not exceed 100% (the platform takes the rest). Only
    a property_admin may call it.
    """
    return (await policy.put_settings(session, principal, body)).public()


# --- reports ----------------------------------------------------------------------------------------


@report_routes.get("/earnings", response_model=Earnings)
async def get_earnings(principal: CurrentPrincipal, session: SessionDep) -> Earnings:
    """The caller's earnings as a spot owner.

    Completed bookings of the caller's spots, their fees and the owner's share, by local month. Anyone may call it for
    themselves.
    """
    return await reports.earnings(session, principal)


@report_routes.get("/occupancy", response_model=Occupancy)
async def get_occupancy(
    principal: Staff, session: SessionDep, day: Annotated[Day | None, Query(description="Local date (default today)")] = None
) -> Occupancy:
    """The community's occupancy.

    Verified spots, cars parked now, bookings running now, and the spots booked in each local hour of `day`. Staff may call it.
    """
    return await reports.occupancy(session, principal, day)
