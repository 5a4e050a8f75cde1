"""Sticky, reproducible traffic split: pure functions of the caller key and the canary share."""

from __future__ import annotations

import hashlib
import hmac

from bertloop.core import constants


def bucket(caller_key: str, salt: str) -> float:
    """A stable position in [0, 100) for a caller; the same key always lands in the same place."""
    digest = hashlib.sha256(f"{salt}\x00{caller_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def choose_role(caller_key: str, canary_percent: float, salt: str, canary_available: bool) -> str:
    """Callers below the share go to the canary. Raising the share only moves callers to the canary."""
    if not canary_available or canary_percent <= 0:
        return constants.ROLE_CHAMPION
    return constants.ROLE_CANARY if bucket(caller_key, salt) < canary_percent else constants.ROLE_CHAMPION


def hash_caller(caller_key: str, secret: bytes) -> str:
    """What the prediction log keeps of a caller: enough to group, not to identify. Keyed by the
    gateway secret, so a leaked log cannot be matched against guessed caller keys."""
    return hmac.new(secret, caller_key.encode(), hashlib.sha256).hexdigest()[:16]
