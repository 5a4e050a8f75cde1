"""Feedback tokens: proof that whoever labels a prediction is the caller it was answered to, in time.

Each answered prediction carries ``v1.<issued at>.<HMAC-SHA256(secret, request id, caller, issued at)>``.
``/feedback`` recomputes the HMAC for the request id it is given and the caller who sends it: another
caller's token, a token for another request, a forged or an expired one does not verify. Pure functions;
the gateway owns the secret and the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

VERSION = "v1"
CLOCK_SKEW_SECONDS = 60  # tokens issued by a sibling gateway whose clock runs slightly ahead


@dataclass(frozen=True)
class TokenCheck:
    valid: bool
    reason: str


def issue(secret: bytes, request_id: str, caller: str, issued_at: float) -> str:
    stamp = int(issued_at)
    return f"{VERSION}.{stamp}.{_mac(secret, request_id, caller, stamp)}"


def verify(secret: bytes, token: str, request_id: str, caller: str, now: float, window: float) -> TokenCheck:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION or not parts[1].isdigit() or len(parts[1]) > 12:
        return TokenCheck(False, "the feedback token is malformed; send the one /predict returned")
    stamp = int(parts[1])
    expected = _mac(secret, request_id, caller, stamp)
    if not hmac.compare_digest(expected.encode(), parts[2].encode("utf-8", "surrogatepass")):
        return TokenCheck(
            False, "the feedback token does not match this request id and caller; only the caller a "
            "prediction was answered to may label it, with the token it was given",
        )  # fmt: skip
    if stamp > now + CLOCK_SKEW_SECONDS:
        return TokenCheck(False, "the feedback token was issued in the future")
    if now - stamp > window:
        return TokenCheck(False, f"the feedback token expired; feedback is taken for {window:.0f} s")
    return TokenCheck(True, "ok")


def _mac(secret: bytes, request_id: str, caller: str, stamp: int) -> str:
    message = "\x00".join(("feedback", request_id, caller, str(stamp))).encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
