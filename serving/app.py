"""The serving gateway (FastAPI): /predict, /feedback, /healthz, /metrics.

Who may call: API keys with scopes (``serving.auth``, see ``serving.auth``), each key with its own rate
and concurrency allowance (``serving.quotas``); feedback is taken only with the token the prediction
was answered with (``serving.provenance``). /healthz stays open.

It serves the MLflow ``champion`` and, when there is one, the ``challenger`` as
canary, on a share of callers set by the canary controller (sticky per caller
key), or in shadow mode where the canary only scores a mirrored copy. Every
prediction, answered or mirrored, is one row in the prediction log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.secrets import gateway_secret
from bertloop.core.stores.predictions import FeedbackExists, PredictionLog, PredictionRow, UnknownRequest
from serving import provenance
from serving.access import admit, build_access
from serving.auth import SCOPE_FEEDBACK, SCOPE_METRICS, SCOPE_PREDICT, Caller
from serving.batching import MicroBatcher
from serving.contract import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    PredictRequest,
    PredictResponse,
    documented_limits,
    error_responses,
)
from serving.limits import MaxBodySize, TrustedHosts
from serving.metrics import GatewayMetrics
from serving.models import RoutingState, ServedModel, serving_plan
from serving.routing import choose_role, hash_caller
from serving.watcher import RegistryWatcher

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Move every object alive now (the models, tokenizers and libraries just loaded) out of the
    garbage collector's view, so its full collections stop walking them in the middle of requests.

    A full collection over that heap paused every request in flight for a few hundred
    milliseconds, which was the gateway's p99; what requests allocate is still collected.
    The previous freeze is lifted first, so the cycles of a model unloaded since are collected
    here rather than kept forever.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Gateway:
    """State shared by the endpoints: routing snapshot, batcher, log, metrics, background work."""

    def __init__(
        self,
        config: PlatformConfig,
        watcher: RegistryWatcher,
        prediction_log: PredictionLog,
        secret: bytes,
    ):
        self.config = config
        self.watcher = watcher
        self.log = prediction_log
        self.secret = secret
        self.plan = serving_plan(config)
        self.metrics = GatewayMetrics(self.plan)
        self.batcher = MicroBatcher(
            config.serving.max_batch_size,
            config.serving.max_batch_wait_ms,
            config.serving.background_max_delay_ms,
            config.serving.max_batch_tokens,
        )
        self.metrics.mirror_backlog.set_function(lambda: self.batcher.background_backlog)
        self.routing = RoutingState(champion=None, canary=None, canary_percent=0.0)
        self._background: set[asyncio.Task[None]] = set()

    async def enforce_retention(self) -> None:
        days = self.config.serving.retention_days
        if days > 0:
            removed = await asyncio.to_thread(self.log.delete_older_than, time.time() - days * 86400)
            log.info(
                "retention: deleted %d predictions and %d feedback rows older than %s days", *removed, days
            )

    async def retain_forever(self) -> None:
        while True:
            await asyncio.sleep(86400)
            await self.enforce_retention()

    async def refresh(self) -> None:
        # Loading runs off the event loop; its torch work runs on the inference thread, between passes.
        state = await asyncio.to_thread(self.watcher.refresh, self.batcher.run_on_inference_thread)
        changed = state.describe() != self.routing.describe()
        if changed:
            log.info("routing now %s", state.describe())
        self.routing = state  # one assignment: requests see the old or the new state, never a mix
        if changed:
            freeze_heap()
        self.metrics.canary_percent.set(state.canary_percent if state.canary else 0)
        self.metrics.record_infra_verdicts(self.watcher.verdicts)

    def serving_description(self) -> dict[str, Any]:
        """The serving plan and each version's infra-validation verdict, for /healthz."""
        return {
            "serving": {"device": self.plan.device, "precision": self.plan.precision},
            "infra_validation": {version: verdict.tag for version, verdict in self.watcher.verdicts.items()},
            "pending_validation": list(self.watcher.pending),
        }

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.serving.reload_interval_seconds)
            try:
                await self.refresh()
            except Exception:  # the registry being briefly away must not stop serving
                log.exception("could not refresh models from the registry; serving the current ones")

    def mirror(self, model: ServedModel, texts: list[str], request_ids: list[str], caller: str) -> None:
        task = asyncio.create_task(self._score_mirror(model, texts, request_ids, caller))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _score_mirror(
        self, model: ServedModel, texts: list[str], request_ids: list[str], caller: str
    ) -> None:
        started = time.perf_counter()
        try:
            results = await self.batcher.submit(model, texts, background=True)
            error = None
        except Exception as failure:
            results, error = [], f"{type(failure).__name__}: {failure}"
        latency = (time.perf_counter() - started) * 1000
        self.log.record(
            self.rows(model, constants.ROLE_SHADOW, texts, [uuid.uuid4().hex for _ in texts], caller,
                      latency, results, error, mirror_of=request_ids)
        )  # fmt: skip
        self.metrics.observe(
            model.version, constants.ROLE_SHADOW, "ok" if error is None else "error", latency
        )

    def rows(
        self,
        model: ServedModel,
        role: str,
        texts: list[str],
        request_ids: list[str],
        caller: str,
        latency_ms: float,
        results: list[Any],
        error: str | None,
        mirror_of: list[str] | None = None,
    ) -> list[PredictionRow]:
        now = time.time()
        redact = self.config.serving.redact_text
        rows = []
        for index, (text, request_id) in enumerate(zip(texts, request_ids, strict=True)):
            result = results[index] if results else None
            rows.append(
                PredictionRow(
                    request_id=request_id,
                    ts=now,
                    caller_hash=hash_caller(caller, self.secret),
                    model_version=model.version,
                    role=role,
                    status="ok" if result is not None else "error",
                    latency_ms=latency_ms,
                    label=result.label if result else None,
                    confidence=result.confidence if result else None,
                    text=None if redact else text,
                    error=error,
                    mirror_of=mirror_of[index] if mirror_of else None,
                    embedding=result.embedding if result else None,
                )
            )
        return rows


def create_app(
    config: PlatformConfig,
    watcher: RegistryWatcher | None = None,
    prediction_log: PredictionLog | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """The gateway app. Refuses (ConfigError) to be built when keys are required and none are set."""
    access = build_access(config, bind_host or config.serving.host)
    secret = gateway_secret(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(
            config,
            watcher or RegistryWatcher(config),
            prediction_log or PredictionLog(config.prediction_log_url),
            secret,
        )
        app.state.gateway = gateway
        await gateway.enforce_retention()
        gateway.batcher.start()
        await gateway.refresh()
        refresher = asyncio.create_task(gateway.refresh_forever())
        retention = asyncio.create_task(gateway.retain_forever())
        try:
            yield
        finally:
            # Uvicorn has already let in-flight requests finish; finish their mirrors and rows too.
            refresher.cancel()
            retention.cancel()
            await gateway.drain()
            await gateway.batcher.stop()
            await asyncio.to_thread(gateway.log.close)

    app = FastAPI(title="bertloop gateway", lifespan=lifespan)
    app.state.access = access
    # The last added runs first: the Host check, then the body limit, then FastAPI parses.
    app.add_middleware(MaxBodySize, max_bytes=config.serving.max_body_bytes)
    app.add_middleware(TrustedHosts, allowed_hosts=config.serving.trusted_hosts)

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        # Each part of a location is cut short: an unknown field's location is its name, and a 1 MB
        # name must not come back whole.
        problems = [
            f"{'.'.join(str(part)[:64] for part in problem['loc'] if part != 'body') or 'body'}: "
            f"{problem['msg'][:300]}"
            for problem in error.errors()
        ]
        return JSONResponse(status_code=422, content=ErrorBody(detail="; ".join(problems)).model_dump())

    @app.exception_handler(StarletteHTTPException)
    async def one_error_body(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=error.status_code,
            content=ErrorBody(detail=str(error.detail)).model_dump(),
            headers=error.headers,
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=error_responses((400, 401, 403, 413, 422, 429, 500, 503)),
    )
    async def predict(
        body: PredictRequest,
        request: Request,
        holder: Annotated[Caller, Depends(admit(SCOPE_PREDICT))],
        x_caller_key: str | None = Header(None, max_length=256),
    ) -> Any:
        gateway: Gateway = request.app.state.gateway
        _log_writable(gateway)
        texts = _checked_texts(body, config)
        state = gateway.routing  # this request's snapshot, whatever swaps happen meanwhile
        if state.champion is None:
            raise HTTPException(503, "no champion model is registered yet; run the retrain DAG first")
        request_ids = [uuid.uuid4().hex for _ in texts]
        caller = x_caller_key or body.caller_key or request_ids[0]
        shadow = config.serving.shadow
        role = choose_role(
            caller, state.canary_percent, config.serving.routing_salt, state.canary is not None and not shadow
        )
        served = state.canary if role == constants.ROLE_CANARY and state.canary else state.champion
        started = time.perf_counter()
        gateway.metrics.in_flight.inc()
        try:
            results = await gateway.batcher.submit(served, texts)
        except Exception as failure:
            latency = (time.perf_counter() - started) * 1000
            gateway.log.record(
                gateway.rows(served, role, texts, request_ids, caller, latency, [], repr(failure))
            )
            gateway.metrics.observe(served.version, role, "error", latency, len(texts))
            log.exception("inference failed on model version %s", served.version)
            raise HTTPException(500, f"inference failed on model version {served.version}") from failure
        finally:
            gateway.metrics.in_flight.dec()
        latency = (time.perf_counter() - started) * 1000
        gateway.log.record(gateway.rows(served, role, texts, request_ids, caller, latency, results, None))
        gateway.metrics.observe(served.version, role, "ok", latency, len(texts))
        # A mirrored copy gives champion-vs-canary agreement on the same texts.
        if shadow and state.canary is not None:
            gateway.mirror(state.canary, texts, request_ids, caller)
        elif role == constants.ROLE_CANARY:
            gateway.mirror(state.champion, texts, request_ids, caller)
        issued_at = time.time()
        return {
            "predictions": [
                {
                    "request_id": request_id,
                    "label": result.label,
                    "confidence": result.confidence,
                    "scores": result.scores,
                    "model_version": served.version,
                    "role": role,
                    "feedback_token": provenance.issue(secret, request_id, holder.identity, issued_at),
                }
                for request_id, result in zip(request_ids, results, strict=True)
            ]
        }

    @app.post(
        "/feedback",
        status_code=201,
        response_model=FeedbackResponse,
        responses=error_responses((400, 401, 403, 404, 409, 413, 422, 429, 503)),
    )
    async def add_feedback(
        body: FeedbackRequest,
        request: Request,
        caller: Annotated[Caller, Depends(admit(SCOPE_FEEDBACK))],
    ) -> Any:
        gateway: Gateway = request.app.state.gateway
        _log_writable(gateway)
        if body.label not in config.data.labels:
            raise HTTPException(422, f"label {body.label!r} is not one of {list(config.data.labels)}")
        check = provenance.verify(
            secret, body.feedback_token, body.request_id, caller.identity, time.time(),
            config.serving.feedback_window_seconds,
        )  # fmt: skip
        if not check.valid:
            raise HTTPException(403, check.reason)
        try:
            await asyncio.to_thread(gateway.log.add_feedback, body.request_id, body.label, caller.identity)
        except UnknownRequest as error:
            raise HTTPException(404, str(error)) from None
        except FeedbackExists as error:
            raise HTTPException(409, str(error)) from None
        return {"request_id": body.request_id, "label": body.label}

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "no champion yet, or the log cannot be written"}},
    )
    async def healthz(request: Request) -> Any:
        gateway: Gateway = request.app.state.gateway
        state: RoutingState = gateway.routing
        if (broken := gateway.log.failure) is not None:
            # Every /predict and /feedback fails while the log cannot be written: say so, never "ok".
            body = {"status": "prediction_log_failed", "reason": broken, **state.describe()}
            return JSONResponse(body, status_code=503)
        body = {
            "status": "ok" if state.champion else "no_champion",
            **state.describe(),
            **state.calibration(),
            **gateway.serving_description(),
        }
        return JSONResponse(body, status_code=200 if state.champion else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses((401, 403)),
        },
    )
    async def metrics(request: Request, _: Annotated[Caller, Depends(admit(SCOPE_METRICS))]) -> Response:
        return request.app.state.gateway.metrics.render()

    app.openapi = documented_limits(app, config)  # type: ignore[method-assign]
    return app


def _log_writable(gateway: Gateway) -> None:
    """No answer without its log row: refuse work, plainly, while the prediction log cannot be written."""
    if (broken := gateway.log.failure) is not None:
        raise HTTPException(503, f"the prediction log cannot be written ({broken[:300]}); see /healthz")


def _checked_texts(body: PredictRequest, config: PlatformConfig) -> list[str]:
    limits = config.serving
    if (body.text is None) == (body.texts is None):
        raise HTTPException(422, "send exactly one of 'text' (a string) or 'texts' (a list of strings)")
    texts = [body.text] if body.text is not None else list(body.texts or [])
    if not texts:
        raise HTTPException(422, "'texts' is empty; send at least one text")
    if len(texts) > limits.max_texts_per_request:
        raise HTTPException(
            422, f"{len(texts)} texts in one request; at most {limits.max_texts_per_request} are allowed"
        )
    for index, text in enumerate(texts):
        if not text.strip():
            raise HTTPException(422, f"text {index} is empty or blank")
        if len(text) > limits.max_text_chars:
            raise HTTPException(
                422, f"text {index} has {len(text)} characters; at most {limits.max_text_chars} are allowed"
            )
    return texts
