"""AES-256-GCM of values at rest: round trip, tampering, binding to the owner, rotation."""

from __future__ import annotations

import base64
import os
import re

import pytest

from alimi import phone
from alimi.crypto import (
    DEVELOPMENT_KEYS,
    Keyring,
    KeyringError,
    Malformed,
    Tampered,
    UnknownKey,
)

K1 = os.urandom(32)
K2 = os.urandom(32)
NUMBER = "+821012345678"


def spec(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in pairs)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.parse(spec(("k1", K1)))


def test_when_a_number_is_sealed__then_it_opens_to_the_same_number(keyring: Keyring) -> None:
    sealed = phone.seal(keyring, "cust-1", NUMBER)
    assert phone.unseal(keyring, "cust-1", sealed) == NUMBER


def test_when_a_number_is_sealed__then_the_stored_form_is_key_id_nonce_and_ciphertext(
    keyring: Keyring,
) -> None:
    sealed = phone.seal(keyring, "cust-1", NUMBER)
    assert set(sealed) == {"k", "n", "c"}
    assert sealed["k"] == "k1"
    assert isinstance(sealed["n"], bytes) and len(sealed["n"]) == 12
    assert isinstance(sealed["c"], bytes) and len(sealed["c"]) == len(NUMBER) + 16
    assert NUMBER.encode() not in sealed["c"] and b"1012345678" not in sealed["c"]


def test_when_one_number_is_sealed_twice__then_nonces_and_ciphertexts_differ(
    keyring: Keyring,
) -> None:
    first, second = (phone.seal(keyring, "cust-1", NUMBER) for _ in range(2))
    assert first["n"] != second["n"]
    assert first["c"] != second["c"]


@pytest.mark.parametrize("part", ["n", "c"])
def test_when_a_byte_of_the_value_is_changed__then_it_is_tampered(
    keyring: Keyring, part: str
) -> None:
    sealed = phone.seal(keyring, "cust-1", NUMBER)
    altered = bytearray(sealed[part])
    altered[-1] ^= 0x01
    with pytest.raises(Tampered) as caught:
        phone.unseal(keyring, "cust-1", {**sealed, part: bytes(altered)})
    assert caught.value.reason == "tampered"
    assert caught.value.key_id == "k1"


def test_when_a_value_is_moved_to_another_subject__then_it_does_not_open(
    keyring: Keyring,
) -> None:
    sealed = phone.seal(keyring, "cust-1", NUMBER)
    with pytest.raises(Tampered):
        phone.unseal(keyring, "cust-2", sealed)


def test_when_a_value_is_moved_to_another_field__then_it_does_not_open(keyring: Keyring) -> None:
    sealed = keyring.encrypt(NUMBER, field="subjects.phone", owner="cust-1")
    with pytest.raises(Tampered):
        keyring.decrypt(sealed, field="subjects.name", owner="cust-1")


def test_when_keys_rotate__then_the_old_key_still_decrypts_and_the_new_one_encrypts() -> None:
    old = Keyring.parse(spec(("k1", K1)))
    rotated = Keyring.parse(spec(("k2", K2), ("k1", K1)))
    before = phone.seal(old, "cust-1", NUMBER)

    assert phone.unseal(rotated, "cust-1", before) == NUMBER
    after = phone.seal(rotated, "cust-1", NUMBER)
    assert after["k"] == "k2" and rotated.current == "k2"
    assert rotated.is_current(after) and not rotated.is_current(before)
    with pytest.raises(UnknownKey):
        phone.unseal(old, "cust-1", after)


def test_when_the_key_id_is_not_in_the_keyring__then_unknown_key_names_it() -> None:
    sealed = phone.seal(Keyring.parse(spec(("k1", K1))), "cust-1", NUMBER)
    with pytest.raises(UnknownKey) as caught:
        phone.unseal(Keyring.parse(spec(("k2", K2))), "cust-1", sealed)
    assert (caught.value.reason, caught.value.key_id) == ("unknown_key", "k1")


def test_when_a_key_id_is_relabelled__then_the_other_key_refuses_it() -> None:
    both = Keyring.parse(spec(("k2", K2), ("k1", K1)))
    sealed = phone.seal(both, "cust-1", NUMBER)
    with pytest.raises(Tampered):
        phone.unseal(both, "cust-1", {**sealed, "k": "k1"})


@pytest.mark.parametrize(
    "value",
    [
        None,
        "+821012345678",
        {},
        {"k": "k1"},
        {"k": "k1", "n": b"short", "c": b"x" * 30},
        {"k": "k1", "n": b"n" * 12, "c": b"tiny"},
        {"k": 1, "n": b"n" * 12, "c": b"x" * 30},
    ],
)
def test_when_the_value_is_not_an_encrypted_value__then_it_is_malformed(
    keyring: Keyring, value: object
) -> None:
    with pytest.raises(Malformed) as caught:
        phone.unseal(keyring, "cust-1", value)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "entry 1: expected <key id>:<base64 key>"),
        ("k1", "entry 1: expected"),
        ("k1:not base64!", "entry 1 (k1): the key is not valid base64"),
        (spec(("k1", b"x" * 16)), "entry 1 (k1): the key must be 32 bytes"),
        (spec(("k1", K1), ("k1", K2)), "entry 2: key id 'k1' appears twice"),
        (spec(("k 1", K1)), "entry 1: the key id must be"),
        (spec(("k1", K1)) + ",", "entry 2: expected"),
    ],
)
def test_when_the_key_setting_is_wrong__then_the_entry_is_named_and_no_key_shown(
    text: str, message: str
) -> None:
    with pytest.raises(KeyringError, match=re.escape(message)) as caught:
        Keyring.parse(text)
    for key in (K1, K2):
        assert base64.b64encode(key).decode() not in str(caught.value)


def test_when_whitespace_surrounds_entries__then_they_are_read() -> None:
    keyring = Keyring.parse(f" k2 : {base64.b64encode(K2).decode()} , {spec(('k1', K1))} ")
    assert keyring.key_ids == ("k2", "k1")


def test_when_the_development_key_is_in_the_keyring__then_it_says_so() -> None:
    assert Keyring.parse(DEVELOPMENT_KEYS).development
    dev_key = DEVELOPMENT_KEYS.split(":", 1)[1]
    assert Keyring.parse(f"{spec(('k1', K1))},old:{dev_key}").development
    assert not Keyring.parse(spec(("dev", K1))).development
