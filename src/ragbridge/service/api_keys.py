"""API keys: make them and keep only their hashes. A key is `rb-` and 256 random bits,
shown once; the store keeps its plain SHA-256, found with one indexed lookup (nobody guesses 256
random bits, so a slow salted password hash would buy nothing)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ragbridge.errors import InvalidRequest
from ragbridge.store.base import ApiKeyRecord, Store

KEY_PREFIX = "rb-"
ADMIN = "admin"
"""The name requests made with the admin key (`RAGBRIDGE_API_KEY`) go by."""
ANONYMOUS = "anonymous"
"""The name requests go by when auth is off."""
RESERVED_NAMES = frozenset({ADMIN, ANONYMOUS})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def generate_key() -> str:
    """A new random key: `rb-` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex SHA-256 the store keeps instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: the secret (shown once) and what the store keeps."""

    secret: str
    record: ApiKeyRecord


async def create_key(
    store: Store,
    name: str,
    *,
    collections: Iterable[str] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> NewKey:
    """Create and store a key; `collections=None` allows every collection.

    Raises `InvalidRequest` for a bad name or limit, `Conflict` if a live key has the name.
    """
    if not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidRequest(
            "Key names are 1-64 letters, digits, '.', '_' or '-', not 'admin' or 'anonymous'.",
            param="name",
        )
    for param, limit in (("rpm", rpm), ("tpm", tpm)):
        if limit is not None and limit < 1:
            raise InvalidRequest(f"{param} must be a positive number.", param=param)
    scope: tuple[str, ...] | None = None
    if collections is not None:
        scope = tuple(dict.fromkeys(c.strip() for c in collections if c.strip()))
        if not scope:
            raise InvalidRequest(
                "List at least one collection, or none for all.", param="collections"
            )
    secret = generate_key()
    record = ApiKeyRecord(
        name=name,
        key_hash=hash_key(secret),
        collections=scope,
        rpm=rpm,
        tpm=tpm,
        created_at=time.time(),
    )
    await store.save_api_key(record)
    return NewKey(secret=secret, record=record)
