"""Property's ticket routes (photos, tickets, their actions, payments) and who may call which.

Routes parse, authorize, call one use case and shape the response. Each route's docstring is a
one-line summary, then what the route does and who may call it; it is the operation's OpenAPI
description. The registry's and settings' routes are in `registry_api`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.payments import PaymentProvider
from services.kit.problems import Forbidden, problem_responses
from services.kit.storage import StorageUnavailable, file_store_of
from services.property import actions, listing, payments, photos, tickets
from services.property import problems as p
from services.property.domain import Action
from services.property.listing import SORT_DESCRIPTION, TicketFilters, TicketSort
from services.property.schemas import (
    FollowUpIn,
    HandOverIn,
    Id,
    PauseIn,
    PaymentIn,
    PaymentPublic,
    PhotoPublic,
    PhotoUploadCreate,
    PhotoUploadPublic,
    QuoteIn,
    RateIn,
    Reason,
    StepPublic,
    TicketCreate,
    TicketPublic,
    UploadTarget,
)
from services.property.settings import Settings

Admin = Annotated[Principal, require_roles("property_admin")]
StaffOnly = Annotated[Principal, require_roles("property_admin", "steward", "community_worker")]
Steward = Annotated[Principal, require_roles("steward", "property_admin")]
ResidentOnly = Annotated[Principal, require_roles("resident")]
TicketId = Annotated[Id, Path(description="Ticket id")]
Filters = Annotated[TicketFilters, Query()]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def payment_provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payment_provider
    return provider


ticket_routes = APIRouter(tags=["tickets"])


# --- photos ------------------------------------------------------------------------------------------


@ticket_routes.post(
    "/photos",
    status_code=201,
    response_model=PhotoPublic,
    responses=problem_responses(p.PhotoTooLarge, p.PhotoNotImage, StorageUnavailable),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in ("image/jpeg", "image/png", "image/webp")},
        }
    },
)
async def upload_photo(request: Request, who: ResidentOnly, session: SessionDep) -> Any:
    """Upload a photo to attach to a ticket.

    A resident sends the raw bytes (at most `photo_max_bytes`; JPEG, PNG or WebP by content, not by
    header); the size is checked while the body streams. The photo is attached by naming it in
    `photo_ids` when filing a ticket.
    """
    settings = settings_of(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.photo_max_bytes:
        raise p.PhotoTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.photo_max_bytes:
            raise p.PhotoTooLarge()
        chunks.append(chunk)
    return await photos.store_photo(session, file_store_of(request), who, b"".join(chunks), settings)


@ticket_routes.post(
    "/photos/uploads",
    status_code=201,
    response_model=PhotoUploadPublic,
    responses=problem_responses(p.PhotoTooLarge, p.DirectUploadUnavailable, StorageUnavailable),
)
async def begin_photo_upload(body: PhotoUploadCreate, request: Request, who: ResidentOnly, session: SessionDep) -> Any:
    """Get a URL to upload a photo straight to the object store.

    A resident declares the photo's type and exact size (at most `photo_max_bytes`) and receives a
    pending photo and a presigned URL, valid for a few minutes, that accepts exactly that type and
    size; the bytes go to the store, not through the service. Then `POST /photos/{id}/uploaded`.
    Where the service keeps photos itself (no object store) it is 409
    `property/direct-upload-unavailable`: use `POST /photos`.
    """
    photo, upload = await photos.begin_upload(session, file_store_of(request), who, body, settings_of(request))
    target = UploadTarget(method=upload.method, url=upload.url, headers=upload.headers, expires_at=upload.expires_at)
    return PhotoUploadPublic(photo=PhotoPublic.model_validate(photo), upload=target)


@ticket_routes.post(
    "/photos/{photo_id}/uploaded",
    response_model=PhotoPublic,
    responses=problem_responses(p.RecordNotFound, p.PhotoNotUploaded, p.PhotoTooLarge, p.PhotoNotImage, StorageUnavailable),
)
async def finish_photo_upload(photo_id: Id, request: Request, who: ResidentOnly, session: SessionDep) -> Any:
    """Report a direct upload done.

    Its uploader calls it after sending the bytes to the presigned URL. The service checks the
    stored photo as `POST /photos` does (size, and JPEG, PNG or WebP by content, matching the
    declared type); a photo that fails is deleted. Then the photo may be named in `photo_ids`.
    """
    return await photos.finish_upload(session, file_store_of(request), who, photo_id, settings_of(request))


PHOTO_CONTENT = {m: {"schema": {"type": "string", "format": "binary"}} for m in ("image/jpeg", "image/png", "image/webp")}
# A photo is the caller's to see, not anyone's: no shared cache keeps it or the URL to it.
PRIVATE = {"Cache-Control": "private, no-store"}


@ticket_routes.get(
    "/photos/{photo_id}",
    response_class=Response,
    responses={
        200: {"description": "The photo's bytes", "content": PHOTO_CONTENT},
        307: {"description": "The photo is fetched from the object store, at a short-lived presigned URL in `Location`"},
        **problem_responses(p.RecordNotFound, StorageUnavailable),
    },
)
async def get_photo(photo_id: Id, request: Request, who: CurrentPrincipal, session: SessionDep) -> Any:
    """Download a photo.

    Its uploader, staff, and anyone who may see the ticket it is attached to may call it; for
    anyone else it is 404. With an object store behind the service the answer is a redirect to a
    presigned URL valid for a few minutes, so the bytes do not pass through the service; otherwise
    the service streams them.
    """
    photo = await photos.get_photo(session, who, photo_id)
    store = file_store_of(request)
    url = await store.download_url(photos.file_key(photo), photo.media_type, settings_of(request).storage_url_expires_s)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers=PRIVATE)
    opened = await photos.open_photo(store, photo)
    headers = {**PRIVATE, "Content-Length": str(opened.size_bytes)}
    return StreamingResponse(opened.chunks, media_type=photo.media_type, headers=headers)


# --- tickets (工单) ---------------------------------------------------------------------------------------


@ticket_routes.post(
    "/tickets",
    status_code=201,
    response_model=TicketPublic,
    responses=problem_responses(p.ResidentNotRegistered, p.UnknownService, p.PhotoUnavailable, p.DailyLimitReached),
)
async def submit_ticket(
    body: TicketCreate, request: Request, who: ResidentOnly, session: SessionDep, idem: IdempotencyDep
) -> Any:
    """File a ticket.

    A registered resident files a repair, cleaning, complaint, consultation or catalogue service;
    the server routes it to the building's steward on duty, else the backup on duty, else the
    community queue, and sets its SLA deadlines. At most `daily_ticket_limit` per resident per day.
    """
    settings = settings_of(request)
    return await idem.run(session, body, lambda: tickets.submit_ticket(session, who, body, settings), TicketPublic)


@ticket_routes.get(
    "/tickets", response_model=Page[TicketPublic], responses=problem_responses(p.ResidentNotRegistered, InvalidCursor)
)
async def list_tickets(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    filters: Filters,
    sort: Annotated[TicketSort, Query(description=SORT_DESCRIPTION)] = "-created_at",
) -> Any:
    """List tickets, newest first unless sorted otherwise.

    A resident sees their household's tickets, staff the community's, a security guard the security
    service's (alarms, device outages); filter by status, building,
    category, assignee, whether an SLA deadline was breached, and search by unit. Cursor-paginated
    (a cursor belongs to its sort).
    """
    items, cursor = await listing.list_tickets(session, who, page, filters, sort)
    return Page[TicketPublic](items=items, next_cursor=cursor)


@ticket_routes.get("/queue", response_model=Page[TicketPublic], responses=problem_responses(InvalidCursor))
async def steward_queue(
    who: Steward,
    session: SessionDep,
    page: PageDep,
    filters: Filters,
    scope: Literal["mine", "community", "all"] = "mine",
    sort: Annotated[TicketSort, Query(description=SORT_DESCRIPTION)] = "due_at",
) -> Any:
    """List open tickets by the deadline each one races.

    A steward sees their own open tickets (`mine`) or the community queue (`community`); a property
    admin may also see every open ticket (`all`). Earliest deadline first (so overdue first) unless
    sorted otherwise; the same filters and unit search as `GET /tickets`. Cursor-paginated.
    """
    if scope == "all" and not who.has("property_admin"):
        raise Forbidden(("只有物业经理可以查看全部工单", "Only a property admin may see every open ticket"))
    items, cursor = await listing.steward_queue(session, who, page, scope, filters, sort)
    return Page[TicketPublic](items=items, next_cursor=cursor)


@ticket_routes.get("/tickets/{ticket_id}", response_model=TicketPublic, responses=problem_responses(p.TicketNotFound))
async def get_ticket(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep) -> Any:
    """Read one ticket.

    The ticket's household and staff may call it, and a security guard for the security service's
    tickets; for anyone else it is 404, so ids cannot be probed.
    """
    return await tickets.get_ticket(session, who, ticket_id)


@ticket_routes.get(
    "/tickets/{ticket_id}/steps",
    response_model=Page[StepPublic],
    responses=problem_responses(p.TicketNotFound, InvalidCursor),
)
async def ticket_steps(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[StepPublic]:
    """Read a ticket's audit trail.

    Every step, in the order taken: who, in which role, which action, from and to which status, and
    when; cursor-paginated. The ticket's household and staff may call it.
    """
    rows, cursor = await tickets.ticket_steps(session, who, ticket_id, page)
    return Page[StepPublic](items=[StepPublic.model_validate(r) for r in rows], next_cursor=cursor)


ACTION_PROBLEMS = problem_responses(p.TicketNotFound, p.ActionNotPermitted, p.TransitionNotAllowed, p.NotAssignee)
ACTION_RULE = (
    "The transition table decides: a role that may never do this is refused with 403, a role that may "
    "but not in the ticket's status with 409; a steward acts only on tickets assigned to them (403)."
)


def _action_route(action: Action, body_model: Any, summary: str, description: str, *extra: Any) -> None:
    """Add `POST /tickets/{id}/<action>`: one route per action, so each has its own body and documentation.

    The endpoint is made here, around its action, because FastAPI reads the body's model from the
    endpoint's signature and that model differs by action.
    """
    handler: Callable[..., Awaitable[Any]]
    if body_model is None:

        async def without_body(ticket_id: TicketId, request: Request, who: CurrentPrincipal, session: SessionDep) -> Any:
            return await actions.act(session, who, ticket_id, action, None, settings_of(request))

        handler = without_body
    else:

        async def with_body(ticket_id: TicketId, body: Any, request: Request, who: CurrentPrincipal, session: SessionDep) -> Any:
            return await actions.act(session, who, ticket_id, action, body, settings_of(request))

        # The module uses postponed annotations; give FastAPI the real body model of this action.
        with_body.__annotations__["body"] = body_model
        handler = with_body
    handler.__name__ = action.value
    handler.__doc__ = f"{summary}\n\n{description} {ACTION_RULE}"
    ticket_routes.add_api_route(
        f"/tickets/{{ticket_id}}/{action.value.replace('_', '-')}",
        handler,
        methods=["POST"],
        response_model=TicketPublic,
        summary=summary,
        responses={**ACTION_PROBLEMS, **problem_responses(*extra)},
        name=action.value,
    )


# (action, body, summary, who may call it and what it does, problems beyond every action's)
_ACTIONS: list[tuple[Any, ...]] = [
    (Action.cancel, Reason, "Cancel the ticket", "The resident's household, or a property admin, cancels with a reason."),
    (Action.approve_quote, None, "Approve the quote", "The resident's household approves the steward's price."),
    (
        Action.reject_quote,
        Reason,
        "Reject the quote",
        "The resident's household rejects the price; the ticket goes back to accepted.",
    ),
    (Action.confirm, None, "Confirm the completed work", "The resident's household confirms the work is done."),
    (
        Action.return_work,
        Reason,
        "Return the work for rework",
        "The resident's household sends completed work back, with a reason.",
    ),
    (Action.rate, RateIn, "Rate the work", "The resident's household rates overall and speed, once.", p.AlreadyRated),
    (
        Action.hurry,
        None,
        "Hurry the ticket (催单)",
        "The resident's household hurries it, at most once per interval.",
        p.HurryTooSoon,
    ),
    (Action.accept, None, "Accept the ticket", "A steward accepts; a queue ticket goes to the first who accepts."),
    (Action.start, None, "Start work", "The assigned steward starts; paid work needs an approved quote.", p.QuoteNotApproved),
    (Action.pause, PauseIn, "Pause work", "The assigned steward pauses, waiting on the resident or parts; the SLA clock stops."),
    (Action.resume, None, "Resume paused work", "The assigned steward resumes; the resolution deadline moves by the pause."),
    (
        Action.quote,
        QuoteIn,
        "Quote a price",
        "The assigned steward prices a value-added service, never a basic one.",
        p.BasicServiceIsFree,
    ),
    (Action.complete, None, "Complete the work", "The assigned steward marks the work done, for the resident to confirm."),
    (Action.follow_up, FollowUpIn, "Record the follow-up visit (回访)", "The assigned steward notes the follow-up."),
    (
        Action.hand_over,
        HandOverIn,
        "Hand the ticket over",
        "The assigned steward hands it to a colleague, with a reason.",
        p.UnknownStaff,
    ),
    (Action.reassign, HandOverIn, "Reassign the ticket", "A property admin assigns it to a steward.", p.UnknownStaff),
    (Action.close, Reason, "Close the ticket", "A property admin closes completed or confirmed work."),
]
for _action, _body, _summary, _description, *_extra in _ACTIONS:
    _action_route(_action, _body, _summary, _description, *_extra)


@ticket_routes.post(
    "/tickets/{ticket_id}/payments",
    status_code=201,
    response_model=PaymentPublic,
    responses=problem_responses(p.TicketNotFound, p.BasicServiceIsFree, p.NothingToPay, p.PaymentDeclined),
)
async def pay(
    ticket_id: TicketId,
    body: PaymentIn,
    request: Request,
    who: ResidentOnly,
    session: SessionDep,
    idem: IdempotencyDep,
) -> Any:
    """Pay for a value-added ticket.

    A resident of the ticket's household pays an approved quote by money (charged through the
    payment provider at once) or by points (requested from governance, settled when it answers).
    A basic service is free and cannot be paid; a ticket holds one live payment at a time.
    """
    settings, provider = settings_of(request), payment_provider(request)
    return await idem.run(
        session,
        body,
        lambda: payments.pay(session, who, ticket_id, body.method, settings, provider),
        PaymentPublic,
    )


@ticket_routes.get(
    "/tickets/{ticket_id}/payments",
    response_model=Page[PaymentPublic],
    responses=problem_responses(p.TicketNotFound, InvalidCursor),
)
async def list_payments(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[PaymentPublic]:
    """List a ticket's payments, oldest first.

    Cursor-paginated. The ticket's household and staff may call it.
    """
    rows, cursor = await payments.list_payments(session, who, ticket_id, page)
    return Page[PaymentPublic](items=[PaymentPublic.model_validate(r) for r in rows], next_cursor=cursor)
