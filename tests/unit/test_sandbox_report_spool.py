"""The sandbox's pending reports: a bounded deque, the rest spooled to disk in order."""

from __future__ import annotations

from pathlib import Path

from alimi_sandbox.reports import Spooled


def _pending(i: int) -> tuple[float, str, int, str, str, bool]:
    return (float(i), "req", i, f"ntc:s{i}", "01012345678", False)


def test_when_more_reports_wait_than_the_limit__then_the_rest_are_spooled_in_order(
    tmp_path: Path,
) -> None:
    spool = Spooled(str(tmp_path), "sms", limit=4)
    spool.extend(_pending(i) for i in range(10))
    assert (len(spool.memory), spool.spooled, len(spool)) == (4, 6, 10)

    out = []
    while len(spool):
        while spool.memory:
            out.append(spool.memory.popleft()[2])
        spool.refill()
        assert len(spool.memory) <= 4
    assert out == list(range(10))
    spool.extend([_pending(10)])  # the file starts again once read back
    assert (len(spool.memory), spool.spooled) == (1, 0)
    spool.close()


def test_when_reports_are_spooled__then_new_ones_queue_behind_them(tmp_path: Path) -> None:
    spool = Spooled(str(tmp_path), "kakao", limit=2)
    spool.extend(_pending(i) for i in range(3))
    spool.memory.popleft()  # room in memory again, but report 2 is still on disk
    spool.extend([_pending(3)])
    assert spool.spooled == 2
    spool.memory.popleft()
    spool.refill()
    assert [p[2] for p in spool.memory] == [2, 3]
    spool.close()
