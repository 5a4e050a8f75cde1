"""API keys and their scopes: parsing the key lines, checking a presented key, deciding whether keys
are required. Pure: the gateway reads the lines (``bertloop.core.secrets``) and hands them in.

A key line is ``<key or sha256:<hex digest>> <scope,scope,...> [name]``; blank lines and ``#`` comments
are skipped. Only sha256 digests are kept in memory, and a presented key is compared with every digest
by ``hmac.compare_digest``, so the time taken does not tell which key came close.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bertloop.core import constants

SCOPE_PREDICT = "predict"
SCOPE_FEEDBACK = "feedback"
SCOPE_METRICS = "metrics"
SCOPES = frozenset({SCOPE_PREDICT, SCOPE_FEEDBACK, SCOPE_METRICS})
ANONYMOUS = constants.ANONYMOUS_CALLER
DIGEST_PREFIX = "sha256:"


class KeyFileError(ValueError):
    """A key line cannot be read; the message names the line (never the key) and how to fix it."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the key's name (or the start of its digest) and what it may do."""

    identity: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    caller: Caller


class KeyRing:
    def __init__(self, entries: Iterable[_Entry] = ()):
        self._entries = tuple(entries)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> KeyRing:
        entries = []
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise KeyFileError(
                    f"key line {number} has {len(parts)} fields; "
                    "write '<key or sha256:digest> <scopes> [name]'"
                )
            secret, scope_list = parts[0], parts[1]
            scopes = frozenset(scope.strip() for scope in scope_list.split(",") if scope.strip())
            if unknown := scopes - SCOPES:
                raise KeyFileError(
                    f"key line {number}: unknown scopes {sorted(unknown)}; use {sorted(SCOPES)}"
                )
            if secret.startswith(DIGEST_PREFIX):
                try:
                    digest = bytes.fromhex(secret[len(DIGEST_PREFIX) :])
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise KeyFileError(f"key line {number}: 'sha256:' must be followed by 64 hex digits")
            else:
                if len(secret) < 16:
                    raise KeyFileError(f"key line {number}: the key is shorter than 16 characters")
                digest = hashlib.sha256(secret.encode()).digest()
            name = parts[2] if len(parts) == 3 else f"key-{digest.hex()[:12]}"
            entries.append(_Entry(digest, Caller(name, scopes)))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str) -> Caller | None:
        """The caller a key belongs to, or None; every digest is compared, in constant time each."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry.caller
        return found


def keys_required(mode: Literal["auto", "required", "off"], host: str, key_count: int) -> bool:
    """``auto`` asks for keys when there are any, or when the gateway listens beyond this machine."""
    if mode == "off":
        return False
    return mode == "required" or key_count > 0 or not is_loopback(host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
