"""The segmenter's own audience predicate selects exactly whom the database's query
selects: the same filters over the same documents, on the real MongoDB-wire server."""

from __future__ import annotations

from typing import Any

import pytest

from alimi.audience import AudienceFilter, AudienceSpec, matcher, to_query
from alimi.store import Store

DOCS: list[dict[str, Any]] = [
    {"_id": "no-tags"},
    {"_id": "tags-null", "tags": None},
    {"_id": "a", "tags": ["a"]},
    {"_id": "ab", "tags": ["a", "b"]},
    {"_id": "b", "tags": ["b"]},
    {"_id": "scalar-tag", "tags": "a"},
    {"_id": "seoul", "tags": ["a"], "attributes": {"city": "seoul", "vip": True, "tier": 1}},
    {"_id": "busan", "tags": ["b"], "attributes": {"city": "busan", "vip": False, "tier": 2}},
    {"_id": "float-tier", "attributes": {"tier": 1.0, "vip": 1}},
    {"_id": "string-tier", "attributes": {"tier": "1", "vip": "true"}},
    {"_id": "cities", "attributes": {"city": ["seoul", "incheon"]}},
    {"_id": "attr-null", "attributes": {"city": None}},
    {"_id": "attrs-not-a-map", "attributes": "seoul"},
]

FILTERS = [
    {"tags_any": ["a"]},
    {"tags_any": ["a", "b"]},
    {"tags_all": ["a", "b"]},
    {"tags_any": ["b"], "tags_all": ["b"]},
    {"attributes": {"city": "seoul"}},
    {"attributes": {"city": ["busan", "incheon"]}},
    {"attributes": {"vip": True}},
    {"attributes": {"vip": False}},
    {"attributes": {"tier": 1}},
    {"attributes": {"tier": "1"}},
    {"attributes": {"tier": [2, "1"]}},
    {"tags_any": ["a"], "attributes": {"city": "seoul", "tier": 1}},
]


@pytest.mark.parametrize("given", FILTERS, ids=[str(f) for f in FILTERS])
async def test_when_a_filter_is_matched_in_the_segmenter__then_it_selects_what_the_query_selects(
    store: Store, given: dict[str, Any]
) -> None:
    await store.subjects.insert_many([dict(d) for d in DOCS])
    spec = AudienceFilter.model_validate(given)

    by_server = {d["_id"] async for d in store.subjects.find(to_query(AudienceSpec(filter=spec)))}
    by_segmenter = {d["_id"] for d in DOCS if matcher(spec)(d)}

    assert by_segmenter == by_server
    assert by_server  # every case selects someone: an empty answer would prove little
