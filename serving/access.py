"""Who gets in: the gateway's FastAPI security dependencies over the pure rules of ``serving.auth``
and ``serving.quotas``.

``build_access`` reads the keys once, when the app is built, and refuses (ConfigError) a gateway that
needs keys and has none. ``admit(scope)`` is the dependency each endpoint declares: the key and its
scope first (401, 403), then the key's rate and in-flight allowance (429 with Retry-After). Both ways
of sending a key are OpenAPI security schemes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from bertloop.core.config import ConfigError, PlatformConfig
from bertloop.core.secrets import api_key_lines
from serving.auth import ANONYMOUS, SCOPE_METRICS, SCOPES, Caller, KeyRing, is_loopback, keys_required
from serving.quotas import KeyQuotas, retry_after_header

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer <key>")
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="X-API-Key: <key>"
)


@dataclass(frozen=True)
class Access:
    """Who may call, fixed when the app is built: the key ring, whether keys are required, the quotas."""

    keys: KeyRing
    require_keys: bool
    quotas: KeyQuotas


def build_access(config: PlatformConfig, host: str) -> Access:
    """The keys and quotas of a gateway listening on ``host``; refuses one that needs keys and has none."""
    keys = KeyRing.parse(api_key_lines(config))
    require_keys = keys_required(config.serving.auth, host, len(keys))
    if require_keys and not keys:
        raise ConfigError(
            f"the gateway requires API keys (serving.auth={config.serving.auth}, host {host}) but none are "
            "configured: set serving.api_keys_file or BERTLOOP_API_KEYS to lines '<key> <scopes>' "
            "(scopes: predict, feedback, metrics), or serve on 127.0.0.1"
        )
    if config.serving.auth == "off" and not is_loopback(host):
        log.warning(
            "!!! serving.auth is off and the gateway listens on %s: ANYONE who can reach it may predict, "
            "label and read metrics. Configure API keys. !!!", host,
        )  # fmt: skip
    limits = config.serving
    quotas = KeyQuotas(limits.rate_limit_per_second, limits.rate_limit_burst, limits.max_concurrent_per_key)
    return Access(keys, require_keys, quotas)


def admit(scope: str) -> Callable[..., AsyncIterator[Caller]]:
    """A dependency: the caller's key and scope checked, then its rate and in-flight allowance."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        api_key: Annotated[str | None, Security(_api_key)],
    ) -> AsyncIterator[Caller]:
        access: Access = request.app.state.access
        caller = _authenticate(access, scope, bearer.credentials if bearer else api_key)
        if scope == SCOPE_METRICS:
            yield caller
            return
        quotas = access.quotas
        # With keys off every caller is "anonymous": each client address gets its own allowance.
        quota_key = caller.identity if access.require_keys else f"address:{_client(request)}"
        if (wait := quotas.take(quota_key, time.monotonic())) > 0:
            raise HTTPException(
                429, f"rate limit of {quotas.rate_per_second:g}/s for this key; retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )  # fmt: skip
        if not quotas.enter(quota_key):
            raise HTTPException(
                429, f"this key already has {quotas.max_concurrent} requests in flight",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        try:
            yield caller
        finally:
            quotas.leave(quota_key)

    return dependency


def _authenticate(access: Access, scope: str, presented: str | None) -> Caller:
    if not access.require_keys:
        return Caller(ANONYMOUS, SCOPES)
    challenge = {"WWW-Authenticate": "Bearer"}
    if not presented:
        raise HTTPException(401, "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                            headers=challenge)  # fmt: skip
    caller = access.keys.authenticate(presented)
    if caller is None:
        raise HTTPException(401, "the API key is not valid", headers=challenge)
    if scope not in caller.scopes:
        raise HTTPException(403, f"this API key lacks the '{scope}' scope")
    return caller


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
