"""Audience specifications and the MongoDB query built from them."""

from typing import Any

import pytest
from pydantic import ValidationError

from alimi.audience import MAX_EXPLICIT_IDS, AudienceFilter, AudienceSpec, to_query


def query(spec: dict[str, Any]) -> dict[str, Any]:
    return to_query(AudienceSpec.model_validate(spec))


def errors(spec: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        AudienceSpec.model_validate(spec)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_when_only_ids_are_given__then_the_query_selects_those_ids() -> None:
    assert query({"subject_ids": ["a", "b"]}) == {"_id": {"$in": ["a", "b"]}}


def test_when_ids_repeat__then_each_appears_once_in_first_seen_order() -> None:
    assert query({"subject_ids": ["b", "a", "b", " a "]}) == {"_id": {"$in": ["b", "a"]}}


def test_when_the_filter_has_one_part__then_the_query_is_that_part_alone() -> None:
    assert query({"filter": {"tags_any": ["vip", "kr"]}}) == {"tags": {"$in": ["vip", "kr"]}}


def test_when_the_filter_requires_all_tags__then_the_query_uses_all() -> None:
    assert query({"filter": {"tags_all": ["vip", "kr"]}}) == {"tags": {"$all": ["vip", "kr"]}}


def test_when_an_attribute_is_a_scalar__then_the_query_is_equality() -> None:
    assert query({"filter": {"attributes": {"plan": "pro"}}}) == {"attributes.plan": "pro"}


def test_when_an_attribute_is_a_list__then_the_query_matches_any_of_its_values() -> None:
    assert query({"filter": {"attributes": {"region": ["seoul", "busan"]}}}) == {
        "attributes.region": {"$in": ["seoul", "busan"]}
    }


def test_when_the_filter_has_several_parts__then_they_are_combined_with_and() -> None:
    assert query(
        {
            "filter": {
                "tags_any": ["a"],
                "tags_all": ["b", "c"],
                "attributes": {"vip": True, "age": 30},
            }
        }
    ) == {
        "$and": [
            {"tags": {"$in": ["a"]}},
            {"tags": {"$all": ["b", "c"]}},
            {"attributes.vip": True},
            {"attributes.age": 30},
        ]
    }


def test_when_ids_and_a_filter_are_given__then_either_selects_a_subject() -> None:
    assert query({"subject_ids": ["a"], "filter": {"tags_any": ["vip"]}}) == {
        "$or": [{"_id": {"$in": ["a"]}}, {"tags": {"$in": ["vip"]}}]
    }


def test_when_attribute_values_are_bool_or_int__then_their_types_are_kept() -> None:
    q = query({"filter": {"attributes": {"vip": True, "age": 30, "code": "30"}}})
    parts = q["$and"]
    assert parts[0]["attributes.vip"] is True
    assert type(parts[1]["attributes.age"]) is int
    assert parts[2]["attributes.code"] == "30"


def test_when_the_spec_is_empty__then_it_is_rejected() -> None:
    assert errors({}) == [
        ((), "Value error, an audience needs subject_ids, a list_id and/or a filter")
    ]


LIST_ID = "lst_0123456789abcdef0123"


def test_when_only_a_list_is_given__then_the_query_selects_its_members() -> None:
    assert query({"list_id": LIST_ID}) == {"lists": LIST_ID}


def test_when_a_list_and_a_filter_are_given__then_either_selects_a_subject() -> None:
    assert query({"list_id": LIST_ID, "filter": {"tags_any": ["vip"]}}) == {
        "$or": [{"lists": LIST_ID}, {"tags": {"$in": ["vip"]}}]
    }


@pytest.mark.parametrize(
    "list_id", [{"$ne": None}, "lst_", "lst_XYZ", "inc_0123456789abcdef0123", "", 1, ["lst_x"]]
)
def test_when_a_list_id_is_not_a_list_id__then_it_is_rejected(list_id: Any) -> None:
    assert errors({"list_id": list_id})[0][0] == ("list_id",)


def test_when_ids_are_empty_and_there_is_no_filter__then_it_is_rejected() -> None:
    assert errors({"subject_ids": []})[0][0] == ()


def test_when_the_filter_is_empty__then_it_is_rejected() -> None:
    [(loc, msg)] = errors({"filter": {}})
    assert loc == ("filter",)
    assert "at least one of tags_any, tags_all, attributes" in msg


def test_when_the_filter_has_only_empty_parts__then_it_is_rejected() -> None:
    assert errors({"filter": {"tags_any": [], "tags_all": [], "attributes": {}}})


@pytest.mark.parametrize("name", ["$where", "a.b", "attributes.x", "1abc", "_x", "", "a b", "a$"])
def test_when_an_attribute_name_is_not_a_plain_name__then_it_is_rejected(name: str) -> None:
    [(loc, _msg)] = errors({"filter": {"attributes": {name: "x"}}})
    assert loc == ("filter", "attributes", name, "[key]")


@pytest.mark.parametrize(
    "value",
    [
        {"$ne": 1},
        {"$gt": ""},
        {"$regex": ".*"},
        [{"$ne": 1}],
        ["ok", {"$exists": True}],
        None,
        1.5,
        [["nested"]],
    ],
)
def test_when_an_attribute_value_is_not_a_scalar__then_it_is_rejected(value: Any) -> None:
    locs = [loc for loc, _ in errors({"filter": {"attributes": {"plan": value}}})]
    assert locs
    assert all(loc[:3] == ("filter", "attributes", "plan") for loc in locs)


@pytest.mark.parametrize("tag", ["$in", "a b", "", "x" * 65, "a/b"])
def test_when_a_tag_is_not_a_plain_name__then_it_is_rejected(tag: str) -> None:
    assert errors({"filter": {"tags_any": [tag]}})[0][0] == ("filter", "tags_any", 0)


@pytest.mark.parametrize("subject_id", [{"$ne": 1}, "$x", "a b", "", "x" * 129, 1])
def test_when_a_subject_id_is_not_a_plain_id__then_it_is_rejected(subject_id: Any) -> None:
    assert errors({"subject_ids": [subject_id]})[0][0] == ("subject_ids", 0)


def test_when_an_unknown_key_is_sent__then_it_is_rejected() -> None:
    assert errors({"subject_ids": ["a"], "query": {"$where": "1"}})[0][0] == ("query",)


def test_when_an_unknown_filter_key_is_sent__then_it_is_rejected() -> None:
    assert errors({"filter": {"tags_any": ["a"], "$or": []}})[0][0] == ("filter", "$or")


def test_when_too_many_ids_are_given__then_it_is_rejected() -> None:
    too_many = [f"s{i}" for i in range(MAX_EXPLICIT_IDS + 1)]
    assert errors({"subject_ids": too_many})[0][0] == ("subject_ids",)


def test_when_a_long_string_value_is_given__then_it_is_rejected() -> None:
    assert errors({"filter": {"attributes": {"note": "x" * 257}}})


def test_when_a_spec_is_built__then_it_is_frozen() -> None:
    spec = AudienceSpec(filter=AudienceFilter(tags_any=["a"]))
    with pytest.raises(ValidationError, match="frozen"):
        spec.filter = None  # type: ignore[misc]
