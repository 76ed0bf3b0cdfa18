"""The filter the segmenter streams a partition of an audience with, in phone-hash order."""

from __future__ import annotations

from alimi.audience import AudienceFilter, AudienceSpec, to_query
from alimi_segmenter.audience_stream import PHONE_ORDER, in_phone_order, phone_order_hint

LIST = "lst_0123456789abcdef0123"


def test_when_the_audience_is_a_list__then_its_own_index_field_comes_first() -> None:
    query = to_query(AudienceSpec(list_id=LIST))

    found = in_phone_order(query, "h1")

    assert list(found) == ["lists", "phone_hash"]
    assert found == {"lists": LIST, "phone_hash": {"$gt": "h1"}}


def test_when_the_audience_is_a_filter__then_phone_hash_comes_first_beside_it() -> None:
    query = to_query(AudienceSpec(filter=AudienceFilter(tags_any=["a"], tags_all=["b"])))

    found = in_phone_order(query, None)

    assert next(iter(found)) == "phone_hash"
    assert found == {"phone_hash": {"$gte": ""}, **query}


def test_when_the_audience_has_several_parts__then_they_stay_one_or_beside_phone_hash() -> None:
    query = to_query(AudienceSpec(subject_ids=["s1"], list_id=LIST))

    found = in_phone_order(query, "h9")

    assert found == {"phone_hash": {"$gt": "h9"}, "$or": query["$or"]}


def test_when_a_partition_is_streamed__then_its_range_bounds_the_hashes() -> None:
    query = to_query(AudienceSpec(filter=AudienceFilter(tags_any=["a"])))

    fresh = in_phone_order(query, None, "4000", "8000")
    resumed = in_phone_order(query, "4abc", "4000", "8000")
    last = in_phone_order(query, None, "c000", None)

    assert fresh["phone_hash"] == {"$gte": "4000", "$lt": "8000"}
    assert resumed["phone_hash"] == {"$gt": "4abc", "$lt": "8000"}  # past its checkpoint
    assert last["phone_hash"] == {"$gte": "c000"}


def test_when_the_audience_is_a_filter__then_the_phone_order_index_is_hinted() -> None:
    by_filter = to_query(AudienceSpec(filter=AudienceFilter(tags_any=["a"])))
    by_ids = to_query(AudienceSpec(subject_ids=["s1", "s2"]))
    by_list = to_query(AudienceSpec(list_id=LIST))
    mixed = to_query(AudienceSpec(subject_ids=["s1"], filter=AudienceFilter(tags_any=["a"])))

    assert phone_order_hint(by_filter) == {"hint": PHONE_ORDER}
    # Ids and lists have indexes of their own; a mix is left to the planner.
    assert phone_order_hint(by_ids) == phone_order_hint(by_list) == phone_order_hint(mixed) == {}
