"""A notice's life: the moves between its states, in one place."""

from __future__ import annotations

import pytest

from alimi import notice_states, states


def test_when_every_move_is_followed__then_every_state_can_be_reached() -> None:
    assert notice_states.reachable() == set(states.NOTICE_STATES)


@pytest.mark.parametrize(
    ("state", "move", "ok"),
    [
        ("pending_approval", "approve", True),
        ("approved", "plan", True),
        ("segmenting", "segmented", True),
        ("sending", "complete", True),
        ("completed", "reopen", True),
        ("sending", "halt", True),
        ("completed", "halt", False),
        ("halted", "resume", True),
        ("segmenting", "fail", True),
        ("sending", "fail", False),
    ],
)
def test_when_a_move_is_tried__then_only_its_source_states_allow_it(
    state: str, move: str, ok: bool
) -> None:
    assert notice_states.allowed(state, move) is ok


def test_when_a_move_is_written__then_its_filter_names_its_source_states() -> None:
    assert notice_states.guard("halt") == {"state": {"$in": ["approved", "segmenting", "sending"]}}
    assert str(notice_states.NotAllowed(notice_states.MOVES["resume"], "sending")) == (
        "the notice is sending; resume needs it to be halted"
    )
