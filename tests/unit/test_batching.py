"""Subjects sorted by phone hash in, deduplicated delivery batches out."""

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from alimi_segmenter.batching import Batch, batches


def subject(sid: str, phone_hash: str, phone: str = "", **more: Any) -> dict[str, Any]:
    # Each hash stands for one phone number; the number is derived from it.
    number = phone or "+8210" + str(int(phone_hash, 16) % 10**8).zfill(8)
    return {"_id": sid, "phone_hash": phone_hash, "phone": number, **more}


async def stream(docs: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for doc in docs:
        yield doc


async def collect(docs: Iterable[dict[str, Any]], *, size: int, first_seq: int = 1) -> list[Batch]:
    return [b async for b in batches(stream(docs), size=size, first_seq=first_seq)]


def ids(batch: Batch) -> list[str]:
    return [r.subject_id for r in batch.recipients]


def hashes(n: int) -> list[str]:
    return [f"{i:04x}" for i in range(1, n + 1)]


async def test_when_there_are_no_subjects__then_no_batch_is_yielded() -> None:
    assert await collect([], size=10) == []


async def test_when_there_is_one_subject__then_one_batch_of_one_is_yielded() -> None:
    [batch] = await collect([subject("s1", "aa", "+821012345678")], size=10)
    assert batch.seq == 1
    assert batch.last_phone_hash == "aa"
    [r] = batch.recipients
    assert (r.subject_id, r.phone, r.name, r.locale, r.also_subject_ids) == (
        "s1",
        "+821012345678",
        "",
        "ko",
        (),
    )


async def test_when_a_subject_has_name_and_locale__then_the_recipient_carries_them() -> None:
    [batch] = await collect([subject("s1", "aa", name="김민수", locale="en")], size=10)
    assert (batch.recipients[0].name, batch.recipients[0].locale) == ("김민수", "en")


async def test_when_name_or_locale_is_none__then_the_defaults_are_used() -> None:
    [batch] = await collect([subject("s1", "aa", name=None, locale=None)], size=10)
    assert (batch.recipients[0].name, batch.recipients[0].locale) == ("", "ko")


async def test_when_adjacent_subjects_share_a_phone_hash__then_the_first_gets_the_others() -> None:
    docs = [subject("s1", "aa"), subject("s2", "aa"), subject("s3", "aa"), subject("s4", "bb")]
    [batch] = await collect(docs, size=10)
    assert ids(batch) == ["s1", "s4"]
    assert batch.recipients[0].also_subject_ids == ("s2", "s3")
    assert batch.recipients[1].also_subject_ids == ()


async def test_when_subjects_fill_batches_exactly__then_every_batch_is_full() -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(hashes(6))]
    result = await collect(docs, size=3)
    assert [len(b.recipients) for b in result] == [3, 3]
    assert [ids(b) for b in result] == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]


async def test_when_subjects_do_not_fill_the_last_batch__then_it_holds_the_rest() -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(hashes(7))]
    result = await collect(docs, size=3)
    assert [len(b.recipients) for b in result] == [3, 3, 1]
    assert [b.seq for b in result] == [1, 2, 3]


async def test_when_batch_size_is_one__then_each_distinct_number_is_its_own_batch() -> None:
    docs = [subject("s1", "aa"), subject("s2", "aa"), subject("s3", "bb")]
    result = await collect(docs, size=1)
    assert [ids(b) for b in result] == [["s1"], ["s3"]]
    assert result[0].recipients[0].also_subject_ids == ("s2",)


async def test_when_duplicates_are_dropped__then_batches_count_distinct_numbers() -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(["a1", "a1", "a2", "a3", "a3", "a4"])]
    result = await collect(docs, size=2)
    assert [ids(b) for b in result] == [["s0", "s2"], ["s3", "s5"]]


async def test_when_a_batch_is_yielded__then_its_checkpoint_is_its_last_recipients_hash() -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(hashes(5))]
    result = await collect(docs, size=2)
    assert [b.last_phone_hash for b in result] == ["0002", "0004", "0005"]


async def test_when_a_group_straddles_the_batch_boundary__then_it_stays_in_one_batch() -> None:
    # size 2: "bb" completes the first batch, and its three subjects must all
    # be in it, so the checkpoint "bb" means every "bb" subject is handled.
    docs = [
        subject("s1", "aa"),
        subject("s2", "bb"),
        subject("s3", "bb"),
        subject("s4", "bb"),
        subject("s5", "cc"),
    ]
    first, second = await collect(docs, size=2)
    assert ids(first) == ["s1", "s2"]
    assert first.recipients[1].also_subject_ids == ("s3", "s4")
    assert first.last_phone_hash == "bb"
    assert ids(second) == ["s5"]
    assert second.last_phone_hash == "cc"


async def test_when_the_input_ends_in_a_group__then_the_last_batch_holds_all_of_it() -> None:
    docs = [subject("s1", "aa"), subject("s2", "bb"), subject("s3", "bb")]
    [batch] = await collect(docs, size=5)
    assert batch.recipients[-1].also_subject_ids == ("s3",)
    assert batch.last_phone_hash == "bb"


async def test_when_batches_are_made__then_every_subject_is_reached_exactly_once() -> None:
    phone_hashes = sorted(f"{(i * 7) % 13:02x}" for i in range(40))
    docs = [subject(f"s{i}", h) for i, h in enumerate(phone_hashes)]
    result = await collect(docs, size=4)
    reached = [
        sid for b in result for r in b.recipients for sid in (r.subject_id, *r.also_subject_ids)
    ]
    assert sorted(reached) == sorted(d["_id"] for d in docs)
    seen = [r.phone for b in result for r in b.recipients]
    assert len(seen) == len(set(seen)) == 13
    assert all(1 <= len(b.recipients) <= 4 for b in result)


async def test_when_batches_are_made__then_no_hash_appears_in_two_batches() -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(["a", "a", "b", "b", "b", "c", "c", "d"])]
    result = await collect(docs, size=1)
    assert [b.last_phone_hash for b in result] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("first_seq", [1, 7])
async def test_when_a_first_seq_is_given__then_numbering_starts_there(first_seq: int) -> None:
    docs = [subject(f"s{i}", h) for i, h in enumerate(hashes(5))]
    result = await collect(docs, size=2, first_seq=first_seq)
    assert [b.seq for b in result] == [first_seq, first_seq + 1, first_seq + 2]


async def test_when_batches_are_consumed_lazily__then_input_is_read_only_as_needed() -> None:
    pulled: list[str] = []

    async def tracking() -> AsyncIterator[dict[str, Any]]:
        for i, h in enumerate(hashes(100)):
            pulled.append(h)
            yield subject(f"s{i}", h)

    gen = batches(tracking(), size=2)
    first = await anext(gen)
    await gen.aclose()
    assert ids(first) == ["s0", "s1"]
    # The third subject had to be read to know the second one's group was over.
    assert len(pulled) == 3


def unreadable(sid: str, phone_hash: str) -> dict[str, Any]:
    """A subject whose stored number could not be decrypted (the stream sets phone None)."""
    return {"_id": sid, "phone_hash": phone_hash, "phone": None}


async def test_when_a_number_cannot_be_decrypted__then_that_person_is_skipped_as_unreadable() -> (
    None
):
    docs = [subject("s1", "aa"), unreadable("s2", "bb"), subject("s3", "cc")]
    [batch] = await collect(docs, size=10)
    assert ids(batch) == ["s1", "s3"]
    [skipped] = batch.skipped
    assert (skipped.subject_id, skipped.reason, skipped.also_subject_ids) == (
        "s2",
        "phone_unreadable",
        (),
    )
    assert batch.last_phone_hash == "cc"


async def test_when_an_unreadable_subject_shares_a_hash__then_the_readable_one_is_reached() -> None:
    docs = [unreadable("s1", "aa"), subject("s2", "aa"), subject("s3", "aa")]
    [batch] = await collect(docs, size=10)
    [recipient] = batch.recipients
    assert (recipient.subject_id, recipient.also_subject_ids) == ("s2", ("s3",))
    assert [(s.subject_id, s.reason) for s in batch.skipped] == [("s1", "phone_unreadable")]


async def test_when_a_group_is_all_unreadable__then_its_hash_still_moves_the_checkpoint() -> None:
    docs = [subject("s1", "aa"), unreadable("s2", "bb"), unreadable("s3", "bb")]
    result = await collect(docs, size=1)
    assert [ids(b) for b in result] == [["s1"], []]
    assert [s.subject_id for s in result[1].skipped] == ["s2", "s3"]
    assert result[-1].last_phone_hash == "bb"


async def test_when_people_share_a_phone__then_their_one_message_names_none_of_them() -> None:
    [batch] = await collect(
        [
            subject("s1", "aa", name="김민수"),
            subject("s2", "aa", name="이영희"),
            subject("s3", "bb", name="박지성"),
        ],
        size=10,
    )
    shared, alone = batch.recipients
    assert (shared.subject_id, shared.also_subject_ids, shared.name) == ("s1", ("s2",), "")
    assert (alone.subject_id, alone.name) == ("s3", "박지성")


async def test_when_people_share_the_number_of_someone_nobody_can_reach__then_they_are_merged() -> (
    None
):
    kakao_only = {"channels": ["kakao"], "kakao_reachable": False}
    docs = [
        subject("s1", "aa"),
        subject("s2", "aa"),
        subject("s3", "bb", **kakao_only),
        subject("s4", "bb", **kakao_only),
        subject("s5", "bb", **kakao_only),
    ]
    [batch] = await collect(docs, size=10)
    assert ids(batch) == ["s1"]
    assert [(s.subject_id, s.also_subject_ids) for s in batch.skipped] == [("s3", ("s4", "s5"))]
    # people = recipients + merged + skipped counts all five once
    assert len(batch.recipients) + batch.merged + len(batch.skipped) == 5
