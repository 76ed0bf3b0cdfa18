"""A notice's life in one place: its states, the moves between them, and the guarded write.

::

    (new) pending_approval ──approve──▶ approved ──plan──▶ segmenting
    segmenting ──segmented (every partition done)──▶ sending ──complete──▶ completed
    completed ──reopen (dead letters replayed)──▶ sending
    approved | segmenting | sending ──halt──▶ halted ──resume──▶ approved
    approved | segmenting ──fail (no audience can be resolved)──▶ failed

Every service moves a notice through :func:`move`: one conditional update whose
filter is the move's *from* states (:func:`guard`), so a move that lost a race,
or came twice, changes nothing and says so. Intake also uses it inside its
transactions (approval with its outbox event and audit entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from alimi.states import (
    NOTICE_APPROVED,
    NOTICE_COMPLETED,
    NOTICE_FAILED,
    NOTICE_HALTED,
    NOTICE_PENDING_APPROVAL,
    NOTICE_SEGMENTING,
    NOTICE_SENDING,
    NOTICE_STATES,
)
from alimi.store import Store


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[str]
    target: str
    why: str


_MOVES = (
    ("approve", {NOTICE_PENDING_APPROVAL}, NOTICE_APPROVED, "a second key approved it"),
    ("plan", {NOTICE_APPROVED}, NOTICE_SEGMENTING, "its audience was split into partitions"),
    ("segmented", {NOTICE_SEGMENTING}, NOTICE_SENDING, "every partition is published"),
    ("complete", {NOTICE_SENDING}, NOTICE_COMPLETED, "every person is final"),
    ("reopen", {NOTICE_COMPLETED}, NOTICE_SENDING, "dead letters were replayed"),
    (
        "halt",
        {NOTICE_APPROVED, NOTICE_SEGMENTING, NOTICE_SENDING},
        NOTICE_HALTED,
        "an operator stopped it",
    ),
    ("resume", {NOTICE_HALTED}, NOTICE_APPROVED, "an operator resumed it"),
    (
        "fail",
        {NOTICE_APPROVED, NOTICE_SEGMENTING},
        NOTICE_FAILED,
        "its audience cannot be resolved",
    ),
)
MOVES: Mapping[str, Move] = {
    name: Move(name, frozenset(sources), target, why) for name, sources, target, why in _MOVES
}

# A notice in one of these may still send to people.
ACTIVE = frozenset({NOTICE_APPROVED, NOTICE_SEGMENTING, NOTICE_SENDING})
# Nothing moves a notice out of these, but ``reopen`` from completed.
FINAL = frozenset({NOTICE_COMPLETED, NOTICE_FAILED})


class NotAllowed(Exception):
    """The notice is not in a state the move starts from."""

    def __init__(self, move: Move, state: str | None) -> None:
        self.move = move
        self.state = state
        needs = " or ".join(sorted(move.sources))
        super().__init__(f"the notice is {state or 'gone'}; {move.name} needs it to be {needs}")


def allowed(state: str, move: str) -> bool:
    return state in MOVES[move].sources


def guard(move: str) -> dict[str, Any]:
    """The filter of a move: the notice is in one of its source states."""
    return {"state": {"$in": sorted(MOVES[move].sources)}}


class MoveOptions(TypedDict, total=False):
    """What :func:`move` and :func:`move_or_raise` take besides the notice and the move:
    the fields to set and to unset with it, the transaction's session, and whether to
    return the notice as it was before the move."""

    changes: Mapping[str, Any] | None
    unset: Mapping[str, str] | None
    session: AsyncClientSession | None
    before: bool


async def move(
    store: Store, notice_id: str, name: str, **options: Unpack[MoveOptions]
) -> dict[str, Any] | None:
    """Make move ``name`` on the notice with ``changes``; the notice after the move (before
    it, with ``before``), or None if it was not in a source state (nothing changed)."""
    target = MOVES[name].target
    update: dict[str, Any] = {
        "$set": {**(options.get("changes") or {}), "state": target, "updated_at": datetime.now(UTC)}
    }
    unset = options.get("unset")
    if unset:
        update["$unset"] = dict(unset)
    before = options.get("before", False)
    return await store.notices.find_one_and_update(
        {"_id": notice_id, **guard(name)},
        update,
        return_document=ReturnDocument.BEFORE if before else ReturnDocument.AFTER,
        session=options.get("session"),
    )


async def move_or_raise(
    store: Store, notice_id: str, name: str, **options: Unpack[MoveOptions]
) -> dict[str, Any]:
    """:func:`move`, or :class:`NotAllowed` naming the state the notice is in."""
    done = await move(store, notice_id, name, **options)
    if done is None:
        current = await store.notices.find_one(
            {"_id": notice_id}, {"state": 1}, session=options.get("session")
        )
        raise NotAllowed(MOVES[name], (current or {}).get("state"))
    return done


def reachable() -> set[str]:
    """The states some path of moves leads to from a new notice."""
    seen = {NOTICE_PENDING_APPROVAL}  # every notice is created waiting for approval
    while True:
        grown = seen | {m.target for m in MOVES.values() if m.sources & seen}
        if grown == seen:
            return seen
        seen = grown


assert set(NOTICE_STATES) == reachable(), "every notice state is reachable"
