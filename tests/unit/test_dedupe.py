"""An audience sorted by phone hash, in runs of one number."""

from collections.abc import AsyncIterator
from typing import Any

from alimi.dedupe import by_number


async def runs(*hashes: str | None) -> list[list[str]]:
    async def docs() -> AsyncIterator[dict[str, Any]]:
        for i, h in enumerate(hashes):
            yield {"_id": f"s{i}", "phone_hash": h}

    return [[d["_id"] for d in run] async for run in by_number(docs())]


async def test_when_people_share_a_number__then_they_come_as_one_run() -> None:
    assert await runs("aa", "aa", "bb", "cc", "cc", "cc") == [
        ["s0", "s1"],
        ["s2"],
        ["s3", "s4", "s5"],
    ]


async def test_when_people_have_no_number__then_each_is_a_run_of_their_own() -> None:
    assert await runs(None, None, "aa", "aa") == [["s0"], ["s1"], ["s2", "s3"]]


async def test_when_the_audience_is_empty__then_there_is_no_run() -> None:
    assert await runs() == []
