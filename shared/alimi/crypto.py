"""Authenticated encryption of personal data at rest: AES-256-GCM with rotating keys.

A :class:`Keyring` holds named 256-bit keys; the first one encrypts, every one
decrypts, so keys rotate without a flag day: put the new key first, keep the old
ones until every value is re-encrypted, then drop them.

One encrypted value is stored as a BSON subdocument::

    {"k": "<key id>", "n": <12 random bytes: the nonce>, "c": <ciphertext and 16-byte tag>}

The associated data binds the value to where it belongs — a format version, the
field and the id of the document that owns it — so a ciphertext copied to
another field or another document does not decrypt.

Keys come from one setting, ``<id>:<base64 of 32 bytes>`` entries separated by
commas, e.g. ``k2:<base64>,k1:<base64>``. Nothing here ever puts key material
or a plaintext into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
FORMAT = b"alimi.v1"

# The key used when none is configured, so `make run` and the tests need no setup.
# It is public: services using it say so in a warning at start-up.
DEVELOPMENT_KEY = b"alimi: development only, public!"
DEVELOPMENT_KEYS = "dev:" + base64.b64encode(DEVELOPMENT_KEY).decode()


class KeyringError(ValueError):
    """The key setting cannot be parsed; the message names the entry, never the key."""


class Unreadable(Exception):
    """A stored value cannot be decrypted. ``reason`` is one of a few fixed words."""

    reason = "unreadable"

    def __init__(self, detail: str, *, key_id: str | None = None) -> None:
        super().__init__(detail)
        self.key_id = key_id


class UnknownKey(Unreadable):
    """Encrypted under a key id the keyring does not hold."""

    reason = "unknown_key"


class Tampered(Unreadable):
    """The authentication tag does not match: altered, moved to another owner, or wrong key."""

    reason = "tampered"


class Malformed(Unreadable):
    """Not an encrypted value at all (missing, wrong shape)."""

    reason = "malformed"


def _aad(field: str, owner: str) -> bytes:
    return b"\x00".join((FORMAT, field.encode(), owner.encode()))


@dataclass(frozen=True)
class Keyring:
    current: str
    ciphers: Mapping[str, AESGCM]
    development: bool = False

    @classmethod
    def from_keys(cls, keys: Mapping[str, bytes] | list[tuple[str, bytes]]) -> Keyring:
        """A keyring of ``(id, key)`` pairs; the first encrypts."""
        pairs = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        if not pairs:
            raise KeyringError("no key given")
        ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(pairs, start=1):
            if not KEY_ID.match(key_id):
                raise KeyringError(
                    f"entry {position}: the key id must be 1 to 32 letters, digits, '_' or '-'"
                )
            if key_id in ciphers:
                raise KeyringError(f"entry {position}: key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"entry {position} ({key_id}): the key must be {KEY_BYTES} bytes "
                    "(openssl rand -base64 32)"
                )
            ciphers[key_id] = AESGCM(key)
        development = any(key == DEVELOPMENT_KEY for _, key in pairs)
        return cls(current=pairs[0][0], ciphers=ciphers, development=development)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``"k2:<base64>,k1:<base64>"`` -> a keyring whose current key is ``k2``."""
        pairs: list[tuple[str, bytes]] = []
        for position, entry in enumerate(spec.split(","), start=1):
            key_id, sep, encoded = entry.strip().partition(":")
            if not sep:
                raise KeyringError(f"entry {position}: expected <key id>:<base64 key>")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"entry {position} ({key_id.strip()}): the key is not valid base64"
                ) from None
            pairs.append((key_id.strip(), key))
        return cls.from_keys(pairs)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self.ciphers)

    def encrypt(self, plaintext: str, *, field: str, owner: str) -> dict[str, Any]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.ciphers[self.current].encrypt(nonce, plaintext.encode(), _aad(field, owner))
        return {"k": self.current, "n": nonce, "c": sealed}

    def decrypt(self, value: Any, *, field: str, owner: str) -> str:
        """The plaintext of ``value``, or :class:`Unreadable` (one of its subclasses)."""
        if not isinstance(value, Mapping):
            raise Malformed("no encrypted value")
        key_id, nonce, sealed = value.get("k"), value.get("n"), value.get("c")
        if not isinstance(key_id, str):
            raise Malformed("no key id")
        if not (isinstance(nonce, bytes) and len(nonce) == NONCE_BYTES):
            raise Malformed("the nonce is not 12 bytes", key_id=key_id)
        if not (isinstance(sealed, bytes) and len(sealed) >= TAG_BYTES):
            raise Malformed("the ciphertext is shorter than a tag", key_id=key_id)
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(f"encrypted under key {key_id!r}, not in the keyring", key_id=key_id)
        try:
            plaintext = cipher.decrypt(nonce, sealed, _aad(field, owner))
        except InvalidTag:
            raise Tampered(
                "authentication failed: altered, or not encrypted for this field and owner",
                key_id=key_id,
            ) from None
        return plaintext.decode()

    def is_current(self, value: Any) -> bool:
        """True if ``value`` is encrypted under the current key (nothing to re-encrypt)."""
        return isinstance(value, Mapping) and value.get("k") == self.current


@functools.lru_cache(maxsize=8)
def keyring(spec: str) -> Keyring:
    """:meth:`Keyring.parse`, once per distinct setting."""
    return Keyring.parse(spec)
