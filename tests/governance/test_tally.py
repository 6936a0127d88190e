"""The tally against a reference written independently here, from the law's words, with fractions."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.governance.tally import Kind, Outcome, Unit, owner_key, tally_owners, tally_poll


@dataclass(frozen=True)
class RegistryUnit:
    """A unit as the registry holds it: sold or not, its buyer (maybe shared with other units), its area."""

    id: str
    area: int
    sold: bool
    buyer: str | None


def reference_outcome(kind: Kind, units: list[RegistryUnit], votes: dict[str, str]) -> str:
    """民法典 第二百七十八条 with 法释〔2009〕7号 第八、九条, counted person by person with Fractions.

    `votes` maps a person to an option; a person is the developer (all unsold units), a buyer (all
    units registered to them) or the single owner of a unit with no buyer recorded."""

    def person(u: RegistryUnit) -> str:
        if not u.sold:
            return "the developer"
        return u.buyer if u.buyer is not None else "owner of " + u.id

    people: dict[str, int] = {}
    for u in units:
        people[person(u)] = people.get(person(u), 0) + u.area
    if not people:
        return "no_quorum"
    voters = [p for p in people if p in votes]
    total_area = sum(people.values())
    voted_area = sum(people[p] for p in voters)
    yes = [p for p in voters if votes[p] == "yes"]
    yes_area = sum(people[p] for p in yes)
    area_share = Fraction(voted_area, total_area) if total_area else Fraction(1)
    if area_share < Fraction(2, 3) or Fraction(len(voters), len(people)) < Fraction(2, 3):
        return "no_quorum"
    yes_area_share = Fraction(yes_area, voted_area) if voted_area else Fraction(0)
    yes_people_share = Fraction(len(yes), len(voters))
    if kind is Kind.owners_major:
        ok = yes_area_share >= Fraction(3, 4) and yes_people_share >= Fraction(3, 4)
    else:
        ok = yes_area_share > Fraction(1, 2) and yes_people_share > Fraction(1, 2)
    return "passed" if ok else "rejected"


def frozen_roll(units: list[RegistryUnit]) -> list[Unit]:
    return [Unit(u.id, u.area, owner_key(u.id, sold=u.sold, buyer_key=u.buyer)) for u in units]


def ballots_by_key(units: list[RegistryUnit], votes: dict[str, str]) -> dict[str, str]:
    """The same votes keyed as the service keys ballots (one per owner key)."""
    out: dict[str, str] = {}
    for u in units:
        person = "the developer" if not u.sold else (u.buyer if u.buyer is not None else "owner of " + u.id)
        if person in votes:
            out[owner_key(u.id, sold=u.sold, buyer_key=u.buyer)] = votes[person]
    return out


registry_units = st.lists(
    st.builds(
        RegistryUnit,
        id=st.uuids().map(str),
        area=st.integers(min_value=1, max_value=30_000),
        sold=st.booleans(),
        buyer=st.one_of(st.none(), st.sampled_from(["b1", "b2", "b3"])),
    ),
    max_size=40,
    unique_by=lambda u: u.id,
)


@settings(max_examples=400, deadline=None)
@given(units=registry_units, kind=st.sampled_from([Kind.owners_ordinary, Kind.owners_major]), data=st.data())
def test_owners_tally_equals_the_reference(units: list[RegistryUnit], kind: Kind, data: st.DataObject) -> None:
    people = sorted({"the developer" if not u.sold else (u.buyer or "owner of " + u.id) for u in units})
    votes = data.draw(
        st.dictionaries(st.sampled_from(people), st.sampled_from(["yes", "no", "abstain"])) if people else st.just({})
    )
    result = tally_owners(kind, frozen_roll(units), ballots_by_key(units, votes))
    assert result.outcome.value == reference_outcome(kind, units, votes)
    assert result.roll.owners == len(people)
    assert result.participating.owners == len(votes)


def units_of(*areas: int) -> list[Unit]:
    return [Unit(f"h{i}", a, f"unit:h{i}") for i, a in enumerate(areas)]


def test_exactly_two_thirds_taking_part_meets_the_quorum_and_one_less_does_not() -> None:
    roll = units_of(100, 100, 100)
    assert tally_owners(Kind.owners_ordinary, roll, {"unit:h0": "yes", "unit:h1": "yes"}).outcome is Outcome.passed
    assert tally_owners(Kind.owners_ordinary, roll, {"unit:h0": "yes"}).outcome is Outcome.no_quorum
    # Two owners of three but only 199 of 300 hundredths of area: short by area alone.
    uneven = units_of(100, 99, 101)
    assert tally_owners(Kind.owners_ordinary, uneven, {"unit:h0": "yes", "unit:h1": "yes"}).outcome is Outcome.no_quorum


def test_exactly_half_approving_does_not_pass_an_ordinary_matter() -> None:
    roll = units_of(100, 100, 100, 100)
    half = {"unit:h0": "yes", "unit:h1": "yes", "unit:h2": "no", "unit:h3": "abstain"}
    assert tally_owners(Kind.owners_ordinary, roll, half).outcome is Outcome.rejected
    more = {"unit:h0": "yes", "unit:h1": "yes", "unit:h2": "yes", "unit:h3": "no"}
    assert tally_owners(Kind.owners_ordinary, roll, more).outcome is Outcome.passed


def test_exactly_three_quarters_passes_a_major_matter_and_less_by_area_does_not() -> None:
    roll = units_of(100, 100, 100, 100)
    three_quarters = {"unit:h0": "yes", "unit:h1": "yes", "unit:h2": "yes", "unit:h3": "no"}
    assert tally_owners(Kind.owners_major, roll, three_quarters).outcome is Outcome.passed
    short = units_of(100, 100, 99, 101)
    assert tally_owners(Kind.owners_major, short, three_quarters).outcome is Outcome.rejected


def test_the_developer_counts_once_for_all_unsold_units_and_a_buyer_once_for_all_their_units() -> None:
    roll = [
        Unit("a", 100, owner_key("a", sold=False, buyer_key=None)),
        Unit("b", 100, owner_key("b", sold=False, buyer_key="ignored")),
        Unit("c", 100, owner_key("c", sold=True, buyer_key="zhang")),
        Unit("d", 100, owner_key("d", sold=True, buyer_key="zhang")),
        Unit("e", 100, owner_key("e", sold=True, buyer_key=None)),
    ]
    result = tally_owners(Kind.owners_ordinary, roll, {"developer": "yes", "buyer:zhang": "no"})
    assert (result.roll.owners, result.roll.area) == (3, 500)
    assert (result.participating.owners, result.participating.area) == (2, 400)
    assert result.outcome is Outcome.rejected  # half the people approve: not more than half


def test_ballots_from_keys_off_the_roll_count_for_nothing() -> None:
    result = tally_owners(Kind.owners_ordinary, units_of(100), {"unit:elsewhere": "yes"})
    assert result.participating.owners == 0
    assert result.outcome is Outcome.no_quorum


@pytest.mark.parametrize(
    ("ballots", "outcome", "winner"),
    [
        ({"h1": "a", "h2": "a", "h3": "b"}, Outcome.winner, "a"),
        ({"h1": "a", "h2": "b"}, Outcome.tie, None),
        ({}, Outcome.tie, None),
    ],
)
def test_a_poll_is_won_by_the_most_households_or_tied(ballots: dict[str, str], outcome: Outcome, winner: str | None) -> None:
    result = tally_poll(["a", "b", "c"], 5, ballots)
    assert (result.outcome, result.winner) == (outcome, winner)
    assert result.participating == len(ballots)
