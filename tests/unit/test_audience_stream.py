"""The filter the segmenter streams a partition of an audience with, in phone-hash order."""

from __future__ import annotations

from alimi.audience import AudienceFilter, AudienceSpec, to_query
from alimi_segmenter.audience_stream import in_phone_order, reading

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


def test_when_the_audience_is_a_filter__then_the_range_is_read_and_the_segmenter_selects() -> None:
    spec = AudienceSpec(filter=AudienceFilter(tags_any=["a"]))

    query, fields, selects = reading(spec, None, "4000", "8000")

    assert query == {"phone_hash": {"$gte": "4000", "$lt": "8000"}}  # the range alone
    assert fields["tags"] == fields["attributes"] == 1
    assert selects is not None
    assert selects({"tags": ["a", "b"]}) and not selects({"tags": ["b"]})


def test_when_the_audience_is_ids_or_a_list__then_the_server_filters_it() -> None:
    for spec in (
        AudienceSpec(subject_ids=["s1", "s2"]),
        AudienceSpec(list_id=LIST),
        AudienceSpec(subject_ids=["s1"], filter=AudienceFilter(tags_any=["a"])),
    ):
        query, _fields, selects = reading(spec, "4abc")
        assert selects is None
        assert query == in_phone_order(to_query(spec), "4abc")
