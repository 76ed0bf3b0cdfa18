"""Audience specifications and their translation into a MongoDB query.

Clients never send a MongoDB query: they send an :class:`AudienceSpec` made of
explicit subject ids, an uploaded list (its id) and/or a filter over tags and
attributes. Keys are restricted to plain names and values to scalars, so no
operator can be smuggled in; :func:`to_query` builds the query from those parts
only.

An uploaded list (``POST /v1/lists``) marks its members: each subject on it
carries the list's id in its ``lists`` array, so a list audience is a filter
on ``subjects`` like the others, and the segmenter streams it in phone-hash
order from the ``lists`` index, however many millions it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SubjectId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,128}$", strip_whitespace=True)
]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
Scalar = Annotated[str, StringConstraints(max_length=256)] | int | bool
ListId = Annotated[str, StringConstraints(pattern=r"^lst_[0-9a-f]{20}$")]
MAX_EXPLICIT_IDS = 10_000


def _one_of_them_given(**parts: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema for "at least one of these properties, not empty" (the validators' rule),
    so that the OpenAPI document says what an empty filter or audience gets: 422."""
    return {"anyOf": [{"required": [name], "properties": {name: s}} for name, s in parts.items()]}


class AudienceFilter(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_one_of_them_given(
            tags_any={"minItems": 1}, tags_all={"minItems": 1}, attributes={"minProperties": 1}
        ),
    )

    tags_any: list[Tag] = Field(default_factory=list, max_length=100)
    tags_all: list[Tag] = Field(default_factory=list, max_length=100)
    # attribute -> value (equality) or list of values (any of them)
    attributes: dict[AttributeName, Scalar | list[Scalar]] = Field(
        default_factory=dict, max_length=50
    )

    @model_validator(mode="after")
    def _not_empty(self) -> AudienceFilter:
        if not (self.tags_any or self.tags_all or self.attributes):
            raise ValueError("a filter needs at least one of tags_any, tags_all, attributes")
        return self


class AudienceSpec(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_one_of_them_given(
            subject_ids={"minItems": 1}, list_id={"type": "string"}, filter={"type": "object"}
        ),
    )

    subject_ids: list[SubjectId] = Field(default_factory=list, max_length=MAX_EXPLICIT_IDS)
    # An uploaded list of people (POST /v1/lists), e.g. those a forensic investigation named.
    list_id: ListId | None = None
    filter: AudienceFilter | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> AudienceSpec:
        if not self.subject_ids and self.list_id is None and self.filter is None:
            raise ValueError("an audience needs subject_ids, a list_id and/or a filter")
        return self


def _filter_query(f: AudienceFilter) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if f.tags_any:
        parts.append({"tags": {"$in": list(f.tags_any)}})
    if f.tags_all:
        parts.append({"tags": {"$all": list(f.tags_all)}})
    for name, value in f.attributes.items():
        key = f"attributes.{name}"
        parts.append({key: {"$in": list(value)}} if isinstance(value, list) else {key: value})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def matcher(f: AudienceFilter) -> Callable[[Mapping[str, Any]], bool]:
    """The filter ``f`` as a predicate over subject documents: true exactly where
    :func:`to_query`'s query for ``f`` matches (MongoDB's rules for arrays, numbers and
    booleans), for a reader that selects the audience itself from a range of the
    directory it streams anyway (the segmenter)."""

    def matches(doc: Mapping[str, Any]) -> bool:
        tags = _values(doc.get("tags"))
        if f.tags_any and not any(_equal(t, want) for t in tags for want in f.tags_any):
            return False
        if f.tags_all and not all(any(_equal(t, want) for t in tags) for want in f.tags_all):
            return False
        attributes = doc.get("attributes")
        for name, wanted in f.attributes.items():
            found = attributes.get(name, _MISSING) if isinstance(attributes, Mapping) else _MISSING
            options = wanted if isinstance(wanted, list) else [wanted]
            if not any(_equal(v, want) for v in _values(found) for want in options):
                return False
        return True

    return matches


_MISSING = object()


def _values(found: Any) -> list[Any]:
    """What an equality on a field compares with: the value, or each element of an array."""
    if found is _MISSING or found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def _equal(value: Any, wanted: Any) -> bool:
    """BSON equality of a stored value and a filter's scalar: a boolean equals only a
    boolean, numbers compare by value across int and float, a string only a string."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value is wanted
    if isinstance(value, int | float) and isinstance(wanted, int | float):
        return value == wanted
    return type(value) is type(wanted) and value == wanted


def to_query(spec: AudienceSpec) -> dict[str, Any]:
    """The subjects selected by ``spec``: everyone any of its parts (ids, list, filter) names."""
    parts: list[dict[str, Any]] = []
    if spec.subject_ids:
        parts.append({"_id": {"$in": list(dict.fromkeys(spec.subject_ids))}})
    if spec.list_id is not None:
        parts.append({"lists": spec.list_id})
    if spec.filter is not None:
        parts.append(_filter_query(spec.filter))
    return parts[0] if len(parts) == 1 else {"$or": parts}
