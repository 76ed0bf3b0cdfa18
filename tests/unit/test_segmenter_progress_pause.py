"""How long the segmenter's progress tracker and monitor wait between checks."""

from __future__ import annotations

from alimi_segmenter.progress import BACKOFF, pause


def test_when_a_check_is_quick__then_the_next_one_comes_after_the_interval() -> None:
    assert pause(1.0, 0.01) == 1.0


def test_when_a_check_is_slow__then_the_next_waits_a_multiple_of_it() -> None:
    # a large notice's receipts take long to count: the tracker backs off in proportion
    assert pause(1.0, 3.0) == 3.0 * BACKOFF
    assert 3.0 / (3.0 + pause(1.0, 3.0)) <= 1 / (1 + BACKOFF)
