"""Parking's gate routes: gate cameras, plate reads at entry and exit, gate events and plate corrections."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.parking import gate
from services.parking import problems as p
from services.parking.api import GateDevice, Payments, SpotAdmin, Staff
from services.parking.domain import BarrierDecision
from services.parking.schemas import GateDecision, GateDeviceCreate, GateDevicePublic, GateEventPublic, GatePass, PlateCorrection

gate_routes = APIRouter(tags=["gate"])


@gate_routes.post(
    "/gate-devices",
    status_code=201,
    response_model=GateDevicePublic,
    responses=problem_responses(p.DuplicateGateDevice, Forbidden),
)
async def register_gate_device(body: GateDeviceCreate, principal: SpotAdmin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a gate camera.

    Its id is the subject of the tokens the camera calls with. A steward or property_admin may call it; safe to retry with an
    `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: gate.register_device(session, principal, body), GateDevicePublic)


@gate_routes.get("/gate-devices", response_model=Page[GateDevicePublic])
async def list_gate_devices(principal: Staff, session: SessionDep, page: PageDep) -> Page[GateDevicePublic]:
    """List the community's gate cameras.

    By id, cursor-paginated. Staff may call it.
    """
    rows, cursor = await gate.list_devices(session, principal, page)
    return Page[GateDevicePublic](items=[GateDevicePublic.model_validate(r) for r in rows], next_cursor=cursor)


@gate_routes.post(
    "/gate/entries",
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_entry(body: GatePass, principal: GateDevice, session: SessionDep, payments: Payments) -> GateDecision:
    """Report a plate read at the entry barrier.

    A confirmed booking of the plate, from the entry grace before its start to its end, becomes active; otherwise a free public
    spot takes the car at the public rate; otherwise the barrier stays shut. `decision` says whether it opens. Only a registered
    gate camera may call it.
    """
    return await gate.gate_pass(session, principal, "entry", body.plate, body.at, payments)


@gate_routes.post(
    "/gate/exits",
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_exit(body: GatePass, principal: GateDevice, session: SessionDep, payments: Payments) -> GateDecision:
    """Report a plate read at the exit barrier.

    Completes the plate's active booking and charges overstay (or, for a walk-in, the public rate); the barrier always opens,
    and an exit that matches nothing is kept for review. Only a registered gate camera may call it.
    """
    return await gate.gate_pass(session, principal, "exit", body.plate, body.at, payments)


@gate_routes.get("/gate-events", response_model=Page[GateEventPublic])
async def list_gate_events(
    principal: Staff, session: SessionDep, page: PageDep, decision: BarrierDecision | None = None
) -> Page[GateEventPublic]:
    """List the community's gate events, newest first.

    Filter by decision to review refused entries and unmatched exits. Staff may call it.
    """
    rows, cursor = await gate.list_gate_events(session, principal, decision, page)
    return Page(items=[GateEventPublic.model_validate(r) for r in rows], next_cursor=cursor)


@gate_routes.post(
    "/gate-events/{event_id}/correction",
    response_model=GateDecision,
    responses=problem_responses(p.GateEventNotFound, p.InvalidBookingState),
)
async def correct_plate(
    event_id: uuid.UUID, body: PlateCorrection, principal: SpotAdmin, session: SessionDep, payments: Payments
) -> GateDecision:
    """Correct a misread plate of a gate event.

    The event is matched again with the right plate at its original time; a walk-in let in under the wrong plate is cancelled
    uncharged first. A steward or property_admin may call it.
    """
    return await gate.correct_plate(session, principal, event_id, body.plate, payments)
