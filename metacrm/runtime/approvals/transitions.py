"""How a step's answers decide it: the approval state machine as pure functions over plain data.

A step's live tasks are those still in play (pending or answered); reassigned and cancelled
tasks no longer count.
"""

from __future__ import annotations

from collections.abc import Iterable

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
# A task handed to someone else, and a task whose step ended without its answer.
REASSIGNED, CANCELLED = "reassigned", "cancelled"
RECALLED = "recalled"
LIVE = frozenset({PENDING, APPROVED, REJECTED})
# What an approval may end as, and what the caller may filter an inbox by.
FINAL = frozenset({APPROVED, REJECTED, RECALLED})


def step_outcome(mode: str, quorum: int, statuses: Iterable[str]) -> str | None:
    """APPROVED or REJECTED once the step's answers decide it, None while it is open.

    `any`: the first answer decides. `all`: unanimous, one rejection rejects. `quorum`: `quorum`
    approvals approve; it is rejected as soon as the pending answers can no longer reach it.
    """
    live = [s for s in statuses if s in LIVE]
    approvals = live.count(APPROVED)
    rejections = live.count(REJECTED)
    pending = live.count(PENDING)
    if mode == "all":
        if rejections:
            return REJECTED
        return APPROVED if live and not pending else None
    if mode == "quorum":
        if approvals >= quorum:
            return APPROVED
        return REJECTED if approvals + pending < quorum else None
    if approvals:
        return APPROVED
    return REJECTED if rejections or not live else None


def quorum_reachable(mode: str, quorum: int, approvers: int) -> bool:
    """Whether a step with this many approvers can ever be approved."""
    return approvers >= (quorum if mode == "quorum" else 1)
