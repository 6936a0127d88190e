"""Security's HTTP routes: devices, access events, alarms and inactivity watches (passes' are in
`passes_api`). Routes parse, authorize, call one use case and shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Text, Timestamp
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.security import access, alarms, devices
from services.security import problems as p
from services.security.schemas import (
    AccessAccepted,
    AccessBatchBody,
    AccessEventPublic,
    AlarmPublic,
    AlarmReport,
    CredentialCreate,
    DeviceCreate,
    DevicePublic,
    Heartbeat,
    WatchCreate,
    WatchPublic,
)
from services.security.settings import Settings

# The watch over doors and alarms (安保): property's staff, community workers and the security guards
# (保安), whose work this is: devices' status, the door search, alarms and answering them, and the
# day's expected visitors. Registering devices and enrolling credentials stay with the admins.
OnWatch = Annotated[Principal, require_roles("steward", "property_admin", "community_worker", "security_guard")]
DeviceAdmin = Annotated[Principal, require_roles("property_admin", "community_worker")]
PropertyAdmin = Annotated[Principal, require_roles("property_admin")]
Resident = Annotated[Principal, require_roles("resident", "elder")]
# Door controllers, gates, cameras and sensors are the gateway's machine clients of this role.
CurrentDevice = Annotated[Principal, require_roles("gate_device")]

router = APIRouter(tags=["security"])


@router.post("/devices", status_code=201, response_model=DevicePublic, responses=problem_responses(p.DuplicateDevice, Forbidden))
async def register_device(body: DeviceCreate, who: DeviceAdmin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a door controller, gate, camera or sensor.

    Its id is the machine client the gateway issues its tokens to. A community_worker or property_admin may call it; safe to
    retry with an `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: devices.register_device(session, who, body), DevicePublic)


@router.get("/devices", response_model=Page[DevicePublic])
async def list_devices(
    who: OnWatch,
    session: SessionDep,
    page: PageDep,
    offline: Annotated[bool | None, Query(description="Only offline (true) or online")] = None,
) -> Any:
    """The community's devices and whether each is offline.

    By building, then id; cursor-paginated. Staff and security guards may call it.
    """
    items, cursor = await devices.list_devices(session, who, offline, page)
    return Page[DevicePublic](items=[DevicePublic.model_validate(d) for d in items], next_cursor=cursor)


@router.post("/devices/me/heartbeat", response_model=Heartbeat, responses=problem_responses(p.UnknownDevice))
async def heartbeat(who: CurrentDevice, session: SessionDep) -> Heartbeat:
    """A device is alive; an outage it was in ends (once).

    Only a registered device may call it.
    """
    return await devices.heartbeat(session, who)


@router.post("/credentials", status_code=204, responses=problem_responses(Forbidden))
async def enrol_credential(body: CredentialCreate, who: DeviceAdmin, session: SessionDep) -> Response:
    """Say which household an opaque card or face id opens for (no face data is ever sent here).

    A community_worker or property_admin may call it; enrolling again moves the credential.
    """
    await access.enrol_credential(session, who, body)
    return Response(status_code=204)


@router.post(
    "/access-events",
    response_model=AccessAccepted,
    responses=problem_responses(p.UnknownDevice, p.BatchTooLarge),
)
async def report_access_events(
    body: AccessBatchBody, who: CurrentDevice, session: SessionDep, request: Request
) -> AccessAccepted:
    """A device reports entries, exits and in-home activity in a batch.

    Each event is stored once by its `event_id`, however often the device retries. Only a registered device may call it.
    """
    settings: Settings = request.app.state.settings
    return await access.ingest(session, who, body, settings.max_batch)


@router.get("/access-events/mine", response_model=Page[AccessEventPublic], responses=problem_responses(p.NotAResident))
async def my_household_events(who: Resident, session: SessionDep, page: PageDep) -> Any:
    """My household's entries and exits (its cards, faces, sensors and its visitors' passes), newest first."""
    items, cursor = await access.household_events(session, who, page)
    return Page[AccessEventPublic](items=items, next_cursor=cursor)


@router.get("/access-events", response_model=Page[AccessEventPublic], responses=problem_responses(p.DeviceNotFound))
async def search_access_events(
    who: OnWatch,
    session: SessionDep,
    page: PageDep,
    device_id: Annotated[Text, Query(max_length=64, description="The door or gate")],
    since: Annotated[Timestamp, Query()],
    until: Annotated[Timestamp, Query()],
) -> Any:
    """One door's events in a time range, newest first.

    Staff and security guards may call it.
    """
    items, cursor = await access.search_events(session, who, device_id, since, until, page)
    return Page[AccessEventPublic](items=items, next_cursor=cursor)


@router.post("/alarms", response_model=AlarmPublic, responses=problem_responses(p.UnknownDevice, p.InvalidAlarm))
async def report_alarm(body: AlarmReport, who: CurrentDevice, session: SessionDep) -> Any:
    """A device raises an alarm (fire, smoke, door forced or held open).

    The same `incident_id` is the same alarm: it is raised, ticketed and notified once. Only a registered device may call it.
    """
    return await alarms.device_alarm(session, who, body)


@router.get("/alarms", response_model=Page[AlarmPublic])
async def list_alarms(
    who: OnWatch,
    session: SessionDep,
    page: PageDep,
    open_only: Annotated[bool, Query(alias="open", description="Only uncleared")] = False,
) -> Any:
    """The community's alarms, newest first.

    Cursor-paginated. Staff and security guards may call it.
    """
    items, cursor = await alarms.list_alarms(session, who, open_only, page)
    return Page[AlarmPublic](items=[AlarmPublic.model_validate(a) for a in items], next_cursor=cursor)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmPublic, responses=problem_responses(p.AlarmNotFound))
async def acknowledge_alarm(alarm_id: Text, who: OnWatch, session: SessionDep) -> Any:
    """Answer an alarm (接警): the first answer is recorded once, with its time and who.

    Its response time (answer minus raising) goes into the city's daily median. Answering again
    changes nothing. Staff and security guards may call it; another community's alarm is 404.
    """
    return await alarms.acknowledge(session, who, alarm_id)


@router.post("/watches", status_code=201, response_model=WatchPublic, responses=problem_responses(p.NotAResident, p.WatchExists))
async def opt_in_watch(body: WatchCreate, who: Resident, session: SessionDep, idem: IdempotencyDep) -> Any:
    """An elder opts in to the inactivity watch, naming a relative.

    It watches nothing until that relative consents. Safe to retry with an `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: alarms.create_watch(session, who, body), WatchPublic)


@router.get("/watches", response_model=Page[WatchPublic])
async def list_my_watches(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    """The watches I am the elder or the relative of, by id, cursor-paginated."""
    items, cursor = await alarms.my_watches(session, who, page)
    return Page[WatchPublic](items=[WatchPublic.model_validate(w) for w in items], next_cursor=cursor)


@router.post("/watches/{watch_id}/consent", response_model=WatchPublic, responses=problem_responses(p.WatchNotFound))
async def consent_to_watch(watch_id: Text, who: CurrentPrincipal, session: SessionDep) -> Any:
    """The named relative consents; the watch starts counting silence from now.

    Only that relative may call it (anyone else: 404).
    """
    return await alarms.consent(session, who, watch_id)


@router.delete("/watches/{watch_id}", status_code=204, responses=problem_responses(p.WatchNotFound))
async def end_watch(watch_id: Text, who: CurrentPrincipal, session: SessionDep) -> Response:
    """The elder or the relative ends the watch."""
    await alarms.end_watch(session, who, watch_id)
    return Response(status_code=204)
