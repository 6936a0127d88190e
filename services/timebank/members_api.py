"""The time bank's member routes: enrolment, verification, relatives, the passbook, hours expiry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.timebank import hours_expiry, members
from services.timebank.api import MemberPath, Worker, balance_of
from services.timebank.problems import NotAMember, NotAVerifiedRelative
from services.timebank.schemas import (
    AgeVerification,
    AwaitingMember,
    HoursExpiryOutlook,
    MemberEnrol,
    MemberOut,
    PassbookEntry,
    RelativeIn,
    RelativeOut,
)

member_routes = APIRouter(tags=["members"])


def member_out(row: Any) -> MemberOut:
    return MemberOut(
        member_id=row.member_id,
        community=row.community,
        is_volunteer=row.is_volunteer,
        is_elder=row.is_elder,
        priority_elder=row.priority_elder,
        birth_date=row.birth_date,
        age_verified_at=row.age_verified_at,
        account_id=row.account_id,
        balance=balance_of(row),
    )


@member_routes.post(
    "/members",
    response_model=MemberOut,
    status_code=201,
    responses={200: {"description": "Already enrolled; roles added", "model": MemberOut}, **problem_responses(Forbidden)},
)
async def enrol(body: MemberEnrol, principal: CurrentPrincipal, session: SessionDep, response: Response) -> MemberOut:
    """Enrol as volunteer, elder or both.

    A resident enrols themself (201), or adds a role when already enrolled (200); a community worker
    may enrol someone else by `member_id`. The member's account is opened with the membership.
    """
    row, created = await members.enrol(session, principal, body)
    if not created:
        response.status_code = 200
    return member_out(row)


@member_routes.get("/members/me", response_model=MemberOut, responses=problem_responses(NotAMember))
async def read_me(principal: CurrentPrincipal, session: SessionDep) -> MemberOut:
    """Read one's own membership and balance.

    The caller's roles, verified birth date and balance; 404 when not enrolled.
    """
    return member_out(await members.read_member(session, principal, principal.subject))


@member_routes.get(
    "/members/awaiting-verification",
    response_model=Page[AwaitingMember],
    responses=problem_responses(Forbidden, InvalidCursor),
)
async def list_awaiting_verification(
    worker: Worker,
    session: SessionDep,
    page: PageDep,
    elder: Annotated[bool | None, Query(description="`true`: only elders; `false`: only non-elders; both if left out")] = None,
) -> Page[AwaitingMember]:
    """List members awaiting verification.

    Members whose birth date no community worker has verified yet, oldest enrolment first, so the
    longest waiting are seen first; cursor-paginated. A member leaves the list once verified.
    Community workers only.
    """
    rows, cursor = await members.list_awaiting_verification(session, worker.community, elder, page)
    return Page[AwaitingMember](items=[AwaitingMember.model_validate(r) for r in rows], next_cursor=cursor)


@member_routes.get("/members/{member_id}", response_model=MemberOut, responses=problem_responses(NotAMember))
async def read_member(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep) -> MemberOut:
    """Read a member's membership and balance.

    For the member, a verified relative, a steward or a community worker; 404 for anyone else, so
    that another resident's membership is not disclosed.
    """
    return member_out(await members.read_member(session, principal, member_id))


@member_routes.post(
    "/members/{member_id}/verification",
    response_model=MemberOut,
    responses=problem_responses(NotAMember, Forbidden),
)
async def verify_age(member_id: MemberPath, body: AgeVerification, worker: Worker, session: SessionDep) -> MemberOut:
    """Record a member's verified birth date and priority-elder status.

    The birth date a community worker checked in person decides the withdrawal age; a priority
    elder's (重点空巢独居老人) care is paid by the pool. Community workers only.
    """
    return member_out(await members.verify_age(session, worker, member_id, body))


@member_routes.post(
    "/members/{member_id}/relatives",
    response_model=RelativeOut,
    status_code=201,
    responses=problem_responses(NotAMember, NotAVerifiedRelative, Forbidden),
)
async def verify_relative(member_id: MemberPath, body: RelativeIn, worker: Worker, session: SessionDep) -> RelativeOut:
    """Record a verified family link.

    Written in both directions, so either may give hours to the other or act for them as a
    delegate. Community workers only.
    """
    return RelativeOut.model_validate(await members.verify_relative(session, worker, member_id, body), from_attributes=True)


@member_routes.get(
    "/members/{member_id}/relatives",
    response_model=Page[RelativeOut],
    responses=problem_responses(NotAMember, InvalidCursor),
)
async def list_relatives(
    member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep, page: PageDep
) -> Page[RelativeOut]:
    """List a member's verified relatives.

    By relative id, cursor-paginated. For the member themself, a steward or a community worker;
    404 for anyone else.
    """
    if member_id != principal.subject and not principal.has("community_worker", "steward"):
        raise NotAMember(member_id=member_id)
    rows, cursor = await members.list_relatives(session, principal.community, member_id, page)
    return Page[RelativeOut](items=[RelativeOut.model_validate(r, from_attributes=True) for r in rows], next_cursor=cursor)


@member_routes.get(
    "/members/{member_id}/passbook",
    response_model=Page[PassbookEntry],
    responses=problem_responses(NotAMember, InvalidCursor),
)
async def passbook(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[PassbookEntry]:
    """Read a member's passbook (存折).

    Posted transfers, newest first, each signed from the member's side with the balance after it;
    cursor-paginated. `me` names the caller. For the member, a verified relative or staff; 404
    otherwise.
    """
    who = principal.subject if member_id == "me" else member_id
    items, cursor = await members.passbook(session, principal, who, page)
    return Page[PassbookEntry](items=items, next_cursor=cursor)


@member_routes.get(
    "/members/{member_id}/hours-expiry",
    response_model=HoursExpiryOutlook,
    responses=problem_responses(NotAMember),
)
async def hours_expiry_outlook(
    member_id: MemberPath,
    principal: CurrentPrincipal,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=366, description="How far ahead")] = 90,
) -> HoursExpiryOutlook:
    """Read the hours that will pass the validity period soon.

    By date, the minutes that will expire in the next `days` days if nothing else changes (empty
    where hours do not expire); spending before a date saves them. `me` names the caller. For the
    member, a verified relative or staff; 404 otherwise.
    """
    who = principal.subject if member_id == "me" else member_id
    return await hours_expiry.hours_expiry_outlook(session, principal, who, days=days)
