"""How a step's answers decide it (`step_outcome`): any, all and quorum modes, including the
moment a quorum becomes unreachable and answers that no longer count."""

from __future__ import annotations

import pytest

from metacrm.runtime.approvals.transitions import (
    APPROVED,
    CANCELLED,
    PENDING,
    REASSIGNED,
    REJECTED,
    quorum_reachable,
    step_outcome,
)

A, R, P = APPROVED, REJECTED, PENDING


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([P, P], None),
        ([A, P], APPROVED),
        ([R, P], REJECTED),
        ([P, REASSIGNED, P], None),
    ],
)
def test_any_mode_is_decided_by_the_first_answer(statuses: list[str], expected: str | None) -> None:
    assert step_outcome("any", 1, statuses) == expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([A, P, P], None),
        ([A, A, P], None),
        ([A, A, A], APPROVED),
        ([A, R, P], REJECTED),
        ([A, A, REASSIGNED], APPROVED),
        ([CANCELLED, P], None),
    ],
)
def test_all_mode_needs_every_answer_and_one_rejection_rejects(
    statuses: list[str], expected: str | None
) -> None:
    assert step_outcome("all", 1, statuses) == expected


@pytest.mark.parametrize(
    ("statuses", "quorum", "expected"),
    [
        ([A, P, P], 2, None),
        ([A, A, P], 2, APPROVED),
        ([R, P, P], 2, None),
        ([R, R, P], 2, REJECTED),
        ([A, R, P], 2, None),
        ([A, R, R], 2, REJECTED),
        ([P, P, P], 3, None),
        ([R, P, P], 3, REJECTED),
        ([A, A, A, R], 3, APPROVED),
    ],
)
def test_quorum_approves_at_n_approvals_and_rejects_once_n_is_unreachable(
    statuses: list[str], quorum: int, expected: str | None
) -> None:
    assert step_outcome("quorum", quorum, statuses) == expected


def test_reassigned_and_cancelled_tasks_do_not_count_toward_a_quorum() -> None:
    assert step_outcome("quorum", 2, [A, REASSIGNED, CANCELLED]) == REJECTED
    assert step_outcome("quorum", 2, [A, REASSIGNED, P]) is None


def test_a_quorum_is_reachable_only_with_enough_approvers() -> None:
    assert quorum_reachable("quorum", 3, 3)
    assert not quorum_reachable("quorum", 3, 2)
    assert quorum_reachable("all", 1, 1)
    assert not quorum_reachable("any", 1, 0)
