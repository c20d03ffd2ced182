"""Secrets a deployment hands ragbridge (docs/hardening.md): a short or placeholder key refuses to
start; `RAGBRIDGE_BOOTSTRAP_KEYS` become non-admin keys at start (hashes only; a changed key
replaces the old one), so a client such as Open WebUI never needs the admin key."""

from __future__ import annotations

import logging
import time

from pydantic import SecretStr

from ragbridge.api.security import UnsafeBindError, is_loopback
from ragbridge.errors import Conflict
from ragbridge.service.api_keys import KEY_PREFIX, RESERVED_NAMES, hash_key
from ragbridge.settings import Settings
from ragbridge.store.base import ApiKeyRecord, Store

log = logging.getLogger(__name__)

MIN_SECRET_CHARS = 32
_PLACEHOLDERS = ("change-me", "changeme", "change_me", "placeholder", "your-key", "xxxxxxxx")
_HOW = "generate one with `openssl rand -hex 32`"


class WeakSecretError(UnsafeBindError):
    """A configured key that anyone could guess: refused at start."""


def check_secrets(settings: Settings) -> None:
    """Raise `WeakSecretError` (one line, naming the setting) for any key unfit to use."""
    if settings.api_key is not None and not is_loopback(settings.host):
        _require_strong("RAGBRIDGE_API_KEY", settings.api_key)
    if settings.metrics_key is not None:
        _require_strong("RAGBRIDGE_METRICS_KEY", settings.metrics_key)
    seen = {settings.api_key.get_secret_value()} if settings.api_key else set()
    for name, key in settings.bootstrap_keys.items():
        where = f"RAGBRIDGE_BOOTSTRAP_KEYS[{name!r}]"
        if name in RESERVED_NAMES or not name.replace("-", "").replace("_", "").isalnum():
            raise WeakSecretError(f"{where}: key names are letters, digits, '-' or '_'.")
        value = key.get_secret_value()
        if not value.startswith(KEY_PREFIX):
            raise WeakSecretError(
                f"{where} must start with '{KEY_PREFIX}': generate one with "
                f'`echo "{KEY_PREFIX}$(openssl rand -hex 32)"`.'
            )
        _require_strong(where, key)
        if value in seen:
            raise WeakSecretError(f"{where} must differ from the admin key and the other keys.")
        seen.add(value)


def _require_strong(where: str, secret: SecretStr) -> None:
    value = secret.get_secret_value()
    if any(marker in value.lower() for marker in _PLACEHOLDERS):
        reason = "is the example's placeholder"
    elif len(value) < MIN_SECRET_CHARS:
        reason = f"is {len(value)} characters long; at least {MIN_SECRET_CHARS} are needed"
    else:
        return
    raise WeakSecretError(f"Refusing to start: {where} {reason}; {_HOW}.")


async def ensure_bootstrap_keys(store: Store, keys: dict[str, SecretStr]) -> None:
    """Make each bootstrap key a live, non-admin key for every collection (idempotent)."""
    if not keys:
        return
    live = {record.name: record for record in await store.list_api_keys() if not record.revoked}
    for name, secret in keys.items():
        digest = hash_key(secret.get_secret_value())
        current = live.get(name)
        if current is not None and current.key_hash == digest:
            continue
        if current is not None:
            await store.revoke_api_key(name)
            log.info("bootstrap key replaced", extra={"fields": {"key": name}})
        try:
            await store.save_api_key(
                ApiKeyRecord(name=name, key_hash=digest, created_at=time.time())
            )
        except Conflict:  # another replica made it at the same moment
            continue
        log.info("bootstrap key ready", extra={"fields": {"key": name}})
