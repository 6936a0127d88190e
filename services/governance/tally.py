"""The tally of a collective decision (集体选择), in integers: pure rules, no I/O.

Owners' decisions (业主共同决定) follow 民法典 第二百七十八条: owners holding at least two thirds of
the exclusive area and at least two thirds of the owners take part (以上 includes the number itself,
民法典 第一千二百五十九条); an ordinary matter passes with more than half (过半数) of the participating
area and of the participating owners, a major one (第六项至第八项: the maintenance fund, rebuilding,
changing the use of common parts or running a business on them) with at least three quarters of each.

Counting follows 法释〔2009〕7号: area is the exclusive area in the registry (第八条); one exclusive unit
counts as one owner, except that the developer's unsold units count together as one and a buyer with
several units counts once (第九条). So a unit carries an `owner_key`: units with the same key are one
owner, and that owner casts one ballot covering all their units' area.

Household polls (征询) give each household one vote; the option with the most votes wins, or it is a tie.
Every comparison is a cross-multiplication of integers: no fractions, no floats.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEVELOPER = "developer"
"""The owner key of every unit the developer has not sold or delivered: together they are one owner."""


class Kind(enum.StrEnum):
    owners_ordinary = "owners_ordinary"
    owners_major = "owners_major"
    household_poll = "household_poll"

    @property
    def by_owners(self) -> bool:
        return self is not Kind.household_poll


class Outcome(enum.StrEnum):
    passed = "passed"
    rejected = "rejected"
    no_quorum = "no_quorum"
    winner = "winner"
    tie = "tie"


OWNER_OPTIONS = ("yes", "no", "abstain")
APPROVE = "yes"

# (numerator, denominator) of each threshold; `at_least` means the share may equal it (以上),
# otherwise it must exceed it (过半数).
QUORUM = (2, 3)
ORDINARY = (1, 2)
MAJOR = (3, 4)


@dataclass(frozen=True)
class Unit:
    """One exclusive unit (专有部分) on a frozen roll: its area in hundredths of a square metre."""

    household_id: str
    area: int
    owner_key: str


def owner_key(household_id: str, *, sold: bool, buyer_key: str | None) -> str:
    """Who a unit counts as (法释〔2009〕7号 第九条): the developer for unsold units, else its buyer
    (units registered with the same buyer key count once), else the unit itself."""
    if not sold:
        return DEVELOPER
    return f"buyer:{buyer_key}" if buyer_key else f"unit:{household_id}"


def share_at_least(part: int, whole: int, ratio: tuple[int, int]) -> bool:
    """part / whole ≥ n / d, by cross-multiplication."""
    n, d = ratio
    return part * d >= whole * n


def share_more_than(part: int, whole: int, ratio: tuple[int, int]) -> bool:
    """part / whole > n / d, by cross-multiplication."""
    n, d = ratio
    return part * d > whole * n


@dataclass(frozen=True)
class Count:
    area: int = 0
    owners: int = 0


@dataclass(frozen=True)
class OwnersTally:
    roll: Count
    participating: Count
    by_option: dict[str, Count]
    outcome: Outcome


@dataclass(frozen=True)
class PollTally:
    households: int
    participating: int
    by_option: dict[str, int]
    outcome: Outcome
    winner: str | None = None


@dataclass
class _Sums:
    area: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, area: int) -> None:
        self.area[key] = self.area.get(key, 0) + area


def tally_owners(kind: Kind, roll: Iterable[Unit], ballots: Mapping[str, str]) -> OwnersTally:
    """Count an owners' decision. `ballots` maps an owner key to its option; keys not on the roll
    count for nothing (the roll is frozen when the decision opens). The closing job sums the same way
    in one SQL query (closing.py) and calls `owners_tally_of`; tests hold the two to one reference."""
    sums = _Sums()
    for unit in roll:
        sums.add(unit.owner_key, unit.area)
    total = Count(area=sum(sums.area.values()), owners=len(sums.area))
    per_option = {option: [0, 0] for option in OWNER_OPTIONS}
    for key, option in ballots.items():
        if key in sums.area:
            per_option[option][0] += sums.area[key]
            per_option[option][1] += 1
    return owners_tally_of(kind, total, {option: Count(area=a, owners=o) for option, (a, o) in per_option.items()})


def owners_tally_of(kind: Kind, roll: Count, counted: Mapping[str, Count]) -> OwnersTally:
    """The tally from sums already made: the roll's owners and area, each option's owners and area."""
    by_option = {option: counted.get(option, Count()) for option in OWNER_OPTIONS}
    part = Count(area=sum(c.area for c in by_option.values()), owners=sum(c.owners for c in by_option.values()))
    return OwnersTally(
        roll=roll, participating=part, by_option=by_option, outcome=owners_outcome(kind, roll, part, by_option[APPROVE])
    )


def owners_outcome(kind: Kind, roll: Count, part: Count, approving: Count) -> Outcome:
    if roll.owners == 0 or not (
        share_at_least(part.area, roll.area, QUORUM) and share_at_least(part.owners, roll.owners, QUORUM)
    ):
        return Outcome.no_quorum
    if kind is Kind.owners_major:
        ok = share_at_least(approving.area, part.area, MAJOR) and share_at_least(approving.owners, part.owners, MAJOR)
    else:
        ok = share_more_than(approving.area, part.area, ORDINARY) and share_more_than(approving.owners, part.owners, ORDINARY)
    return Outcome.passed if ok else Outcome.rejected


def tally_poll(options: Iterable[str], households: int, ballots: Mapping[str, str]) -> PollTally:
    """Count a household poll: one vote per household; the most votes win, an equal top is a tie."""
    votes: dict[str, int] = {}
    for option in ballots.values():
        votes[option] = votes.get(option, 0) + 1
    return poll_tally_of(options, households, votes)


def poll_tally_of(options: Iterable[str], households: int, votes: Mapping[str, int]) -> PollTally:
    """The poll's tally from the votes per option already counted."""
    by_option = {option: votes.get(option, 0) for option in options}
    top = max(by_option.values(), default=0)
    leaders = [option for option, n in by_option.items() if n == top]
    participating = sum(by_option.values())
    if participating and len(leaders) == 1:
        return PollTally(households, participating, by_option, Outcome.winner, leaders[0])
    return PollTally(households, participating, by_option, Outcome.tie)
