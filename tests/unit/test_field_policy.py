"""What a record's fields show when the caller's roles disagree, and when a rule spares the
record's owner (`except_owner`): the merge of field permissions (most permissive wins), the
policy each row gets, and what may be probed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import HIDDEN, MASKED, VISIBLE, EntityPermissions, FieldRule
from metacrm.runtime.permissions import (
    GRANT_PREFIX,
    UNRESTRICTED,
    FieldPolicy,
    Reading,
    _most_permissive,
    _probeable,
    _shown,
)

ME, SOMEONE = "u-me", "u-someone"
CONTACT = EntityDef.from_doc(
    {
        "name": "contact",
        "label": {"en": "Contact"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "mobile", "type": "phone"},
            {"name": "email", "type": "email"},
        ],
    }
)
KEEP_2 = {"keep_start": 0, "keep_end": 2, "char": "#"}


def role(**fields: FieldRule) -> EntityPermissions:
    return EntityPermissions(actions={"read": "all"}, fields=fields)


def masked(mask: Any = None, *, spare: bool = False) -> FieldRule:
    return FieldRule("masked", mask, spare)


def hidden(*, spare: bool = False) -> FieldRule:
    return FieldRule("hidden", None, spare)


def row(owner: str, *grants: int) -> Any:
    """A row as the database returns it: its columns by name, grant flags included."""
    flags = {f"{GRANT_PREFIX}{i}": g for i, g in enumerate(grants)}
    return SimpleNamespace(_mapping={"id": "r1", "owner": owner, **flags})


def reading(*roles: EntityPermissions, flags: bool = False) -> Reading:
    columns: list[Any] = [object() for _ in roles] if flags else []
    return Reading(None, roles, columns, False, ME)


# ---- the merge --------------------------------------------------------------------------------


def test_a_rule_sparing_the_owner_shows_the_field_whole_only_on_owned_records() -> None:
    roles = [role(mobile=masked(spare=True), email=hidden(spare=True))]
    assert _most_permissive(roles, owned=True) == FieldPolicy({}, {})
    others = _most_permissive(roles, owned=False)
    assert others.levels == {"mobile": MASKED, "email": HIDDEN}
    assert others.masks == {"mobile": None}


def test_a_sparing_role_beats_a_masking_one_only_for_owned_records() -> None:
    roles = [role(mobile=masked(KEEP_2)), role(mobile=hidden(spare=True))]
    assert _most_permissive(roles, owned=True).level("mobile") == VISIBLE
    others = _most_permissive(roles, owned=False)
    assert others.level("mobile") == MASKED
    # The mask is the masking role's: the sparing one hides the field from non-owners.
    assert others.masks == {"mobile": KEEP_2}


def test_a_role_without_the_rule_shows_the_field_in_full_everywhere() -> None:
    roles = [role(mobile=masked(spare=True)), role()]
    for owned in (True, False):
        assert _most_permissive(roles, owned=owned) == FieldPolicy({}, {})


def test_of_two_roles_masking_non_owners_the_first_masks() -> None:
    roles = [role(mobile=masked(KEEP_2, spare=True)), role(mobile=masked("email"))]
    assert _most_permissive(roles, owned=False).masks == {"mobile": KEEP_2}
    # The owner: the first role shows it whole, which beats the second's mask.
    assert _most_permissive(roles, owned=True) == FieldPolicy({}, {})
    flipped = [role(mobile=masked(KEEP_2)), role(mobile=masked("email", spare=True))]
    assert _most_permissive(flipped, owned=False).masks == {"mobile": KEEP_2}
    assert _most_permissive(flipped, owned=True) == FieldPolicy({}, {})


def test_without_except_owner_owning_changes_nothing() -> None:
    roles = [role(mobile=masked(KEEP_2), email=hidden())]
    assert _most_permissive(roles, owned=True) == _most_permissive(roles, owned=False)


RULES = st.one_of(
    st.none(),
    st.builds(
        FieldRule,
        st.sampled_from(["hidden", "masked", "read_only"]),
        st.none(),
        st.booleans(),
    ).filter(lambda r: r.access != "read_only" or not r.except_owner),
)


@given(st.lists(RULES, min_size=1, max_size=4))
def test_the_merge_shows_the_most_any_role_shows_and_owning_never_shows_less(
    rules: list[FieldRule | None],
) -> None:
    roles = [role(mobile=r) if r is not None else role() for r in rules]
    mine, theirs = (_most_permissive(roles, owned=o).level("mobile") for o in (True, False))
    assert theirs == max(p.read_level("mobile") for p in roles)
    assert mine == max(p.read_level("mobile", owned=True) for p in roles)
    assert mine >= theirs
    # Probing follows what every role shows on any record, not on the caller's own.
    assert _probeable(roles, "mobile") == all(r is None or r.access == "read_only" for r in rules)
    assert _shown(roles, "mobile") == (mine > HIDDEN)


# ---- per row ----------------------------------------------------------------------------------


def test_each_row_is_judged_on_its_owner() -> None:
    read = reading(role(mobile=masked(spare=True)))
    assert read.per_row
    assert read.policy(row(ME)) == FieldPolicy({}, {})
    assert read.policy(row(SOMEONE)).level("mobile") == MASKED
    # Without a row: as on a record the caller doesn't own.
    assert read.policy().level("mobile") == MASKED
    # One merge per kind of row.
    assert read.policy(row(ME)) is read.policy(row(ME))


def test_only_the_roles_granting_the_row_decide_even_for_its_owner() -> None:
    read = reading(role(mobile=masked(spare=True)), role(mobile=masked(KEEP_2)), flags=True)
    assert read.policy(row(ME, 1, 1)).level("mobile") == VISIBLE
    # Only the masking role grants this one: owning it doesn't lift that role's mask.
    only_masking = read.policy(row(ME, 0, 1))
    assert only_masking.level("mobile") == MASKED and only_masking.masks["mobile"] == KEEP_2
    # Seen only through a share (no role grants it): every read role counts.
    assert read.policy(row(ME, 0, 0)).level("mobile") == VISIBLE
    assert read.policy(row(SOMEONE, 0, 0)).level("mobile") == MASKED


def test_rows_need_no_owner_check_when_no_rule_spares_owners() -> None:
    read = reading(role(mobile=masked()))
    assert not read.per_row
    assert read.policy(row(ME)).level("mobile") == MASKED
    admin = Reading(None, (), [], True, ME)
    assert admin.policy(row(SOMEONE)) is UNRESTRICTED and not admin.per_row


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (ME, {"id": "r1", "mobile": "13812345678", "email": "a@example.com"}),
        (SOMEONE, {"id": "r1", "mobile": "138****5678"}),
    ],
    ids=["owned", "not-owned"],
)
def test_applying_a_rows_policy_to_its_record_and_history(
    owner: str, expected: dict[str, Any]
) -> None:
    policy = reading(role(mobile=masked(spare=True), email=hidden(spare=True))).policy(row(owner))
    record = {"id": "r1", "mobile": "13812345678", "email": "a@example.com"}
    assert policy.apply(CONTACT, record) == expected
    # A record cut down by `fields` stays cut down.
    assert policy.apply(CONTACT, {"id": "r1"}) == {"id": "r1"}
    changes = {"mobile": {"old": None, "new": "13812345678"}, "email": {"old": None, "new": "x"}}
    shown = policy.changes(CONTACT, changes)
    assert shown == (changes if owner == ME else {"mobile": {"old": None, "new": "138****5678"}})
