"""Request limits enforced before the body is parsed: a known Host header (400) and a maximum body
size (413), each refused with the gateway's one error body."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised while a streamed body is read; an HTTPException so the app answers it as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body over {max_bytes} bytes; send less")


class MaxBodySize:
    """ASGI middleware: a body over ``max_bytes`` gets a 413, whether it declares its length or streams.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body is
    counted as it arrives and refused once it passes the limit, so no request can make the gateway
    hold more than ``max_bytes`` of it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_error(send, 413, f"request body over {self.max_bytes} bytes; send less")


class TrustedHosts:
    """ASGI middleware: a Host header outside ``allowed`` gets a 400 (this stops DNS rebinding).

    ``"*"`` allows any host and ``"*.example.com"`` any subdomain, as in Starlette's middleware, whose
    plain-text answer this replaces with the JSON error body every other refusal has.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]):
        self.app = app
        self.allowed = [host.lower() for host in allowed_hosts]

    def _allows(self, host: str) -> bool:
        return any(
            pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
            for pattern in self.allowed
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            host = raw.rsplit(":", 1)[0] if not raw.endswith("]") else raw
            if not self._allows(host.lower()):
                await send_error(send, 400, "unknown Host header; add the name to serving.trusted_hosts")
                return
        await self.app(scope, receive, send)


async def send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
