"""Telling a write that met a stored document from a write that failed."""

from typing import Any

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError

from alimi.duplicate_keys import DUPLICATE_KEY, collided, only_duplicates


def bulk_error(*codes: int, **more: Any) -> BulkWriteError:
    errors = [{"index": i * 2, "code": code, "errmsg": "x"} for i, code in enumerate(codes)]
    return BulkWriteError({"writeErrors": errors, "writeConcernErrors": [], **more})


def test_when_only_duplicate_keys_failed__then_their_positions_are_given_in_order() -> None:
    exc = bulk_error(DUPLICATE_KEY, DUPLICATE_KEY)
    exc.details["writeErrors"].reverse()
    assert collided(exc) == [0, 2]
    assert only_duplicates(exc)


def test_when_another_write_error_is_among_them__then_the_error_is_raised_again() -> None:
    exc = bulk_error(DUPLICATE_KEY, 121)  # 121: document failed validation
    with pytest.raises(BulkWriteError) as raised:
        collided(exc)
    assert raised.value is exc
    assert not only_duplicates(exc)


def test_when_the_write_concern_failed__then_even_duplicates_do_not_hide_it() -> None:
    exc = bulk_error(DUPLICATE_KEY, writeConcernErrors=[{"code": 64, "errmsg": "waiting"}])
    with pytest.raises(BulkWriteError):
        collided(exc)
    assert not only_duplicates(exc)


def test_when_a_bulk_error_names_no_write_error__then_it_is_no_collision() -> None:
    with pytest.raises(BulkWriteError):
        collided(bulk_error())


def test_when_a_single_insert_collided__then_it_is_only_a_duplicate() -> None:
    assert only_duplicates(DuplicateKeyError("E11000 duplicate key error", DUPLICATE_KEY))
