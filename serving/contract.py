"""The gateway's published contract: response bodies, the one error body, and the OpenAPI document
with the configured limits written into it, so what the schema allows is what the checks accept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from bertloop.core.config import PlatformConfig


class ErrorBody(BaseModel):
    """Every error the gateway answers (4xx and 5xx) has this body."""

    detail: str


class PredictionOut(BaseModel):
    request_id: str
    label: str
    confidence: float
    scores: dict[str, float]
    model_version: str
    role: str
    feedback_token: str


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class Health(BaseModel):
    """/healthz: 200 while a champion serves; 503 with the same fields (and a reason) when not."""

    model_config = ConfigDict(extra="allow")
    status: str
    champion: str | None
    canary: str | None
    canary_percent: float


class FeedbackResponse(BaseModel):
    request_id: str
    label: str


def error_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``statuses``, each with the one error body."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def documented_limits(app: FastAPI, config: PlatformConfig) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that writes the configured limits and the label set into the request schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _constrain(schema["components"]["schemas"], config)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _constrain(schemas: dict[str, Any], config: PlatformConfig) -> None:
    limits = config.serving
    text = {"type": "string", "minLength": 1, "maxLength": limits.max_text_chars, "pattern": r"\S"}
    predict = schemas["PredictRequest"]
    predict["properties"]["text"] = {**text, "title": "Text"}
    predict["properties"]["texts"] = {
        "type": "array", "items": text, "minItems": 1, "maxItems": limits.max_texts_per_request,
        "title": "Texts",
    }  # fmt: skip
    predict["properties"]["caller_key"] = {"type": "string", "minLength": 1, "maxLength": 256}
    predict["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]
    feedback = schemas["FeedbackRequest"]["properties"]
    feedback["label"] = {"type": "string", "enum": list(config.data.labels), "title": "Label"}
