"""The gateway's published contract: request and response bodies, the one error body, and the OpenAPI
document with the configured limits written into it, so what the schema allows is what the checks accept."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from bertloop.core.config import PlatformConfig


def _encodable(value: str) -> str:
    """Refuse text that is not valid Unicode (a lone surrogate such as \\ud800 is valid JSON): it would
    fail the tokenizer and the prediction log far from the request that carried it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"holds {value[error.start : error.end]!a} at position {error.start}, which is not valid Unicode "
            "(a lone surrogate); send UTF-8 text"
        ) from None
    return value


ValidText = Annotated[StrictStr, AfterValidator(_encodable)]
# Identifiers are short: an error that names one never echoes a megabyte back.
RequestId = Annotated[StrictStr, Field(min_length=1, max_length=64), AfterValidator(_encodable)]
CallerKey = Annotated[StrictStr, Field(min_length=1, max_length=256), AfterValidator(_encodable)]
# A label names a class (the log's column holds 256 characters): the 422 for an unknown one quotes it.
Label = Annotated[StrictStr, Field(min_length=1, max_length=256), AfterValidator(_encodable)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: ValidText | None = None
    texts: list[ValidText] | None = None
    caller_key: CallerKey | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: RequestId
    label: Label
    feedback_token: Annotated[StrictStr, Field(min_length=1, max_length=128)] = Field(
        description="The feedback_token /predict returned with this request id, sent by the same caller."
    )


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
