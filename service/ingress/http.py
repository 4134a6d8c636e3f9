"""The REST ingress (FastAPI): service.md's routes, one error mapping, metrics recorded per request.

The app talks to generators through an `ImageBackend` (ingress/common.py; deployments.py: a Ray Serve handle; tests can
inject an in-process one), so this file knows nothing of Ray.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import ApiKeys
from service.batching import MAX_NAME_CHARS, expand
from service.config import AppConfig
from service.errors import (
    InvalidRequest,
    MalformedRequest,
    NotReady,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
    to_answer,
)
from service.ingress.common import (
    ImageBackend,
    SpeechBackend,
    VideoBackend,
    clean_request_id,
    generate_all,
    parse_timeout,
    ready_info,
)
from service.ingress.http_speech import SPEECH_PATHS, add_speech_routes
from service.ingress.http_video import add_video_routes
from service.ingress.playground import add_playground_routes, is_page_path
from service.ingress.streaming import ImageStreamBackend, IndexedPreview, preview_every_for, sse, stream_images
from service.metrics import ServiceMetrics
from service.types import GeneratedImage, ImageItem, ImageRequest, ModelInfo

log = logging.getLogger("djepa.service")

TIMEOUT_HEADER = "X-Request-Timeout"  # seconds; lowers the configured deadline for one request
# health and metrics are not counted
COUNTED = {"/v1/images", "/v1/images/generations", "/v1/models", "/v1/videos", *SPEECH_PATHS}
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]  # class names, model ids, OpenAI's `user`


class EdgeGuard:
    """ASGI middleware in front of the routes: API keys (every path but OPEN_PATHS and the playground page, when
    keys are configured), then for bodies: a JSON content type (none given is read as JSON; another is a 415)
    and at most `max_body_bytes` (a 413, read no further). The body is read here, bounded, and
    handed on whole. Errors come from `on_error` (the app's one error path)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys | None, max_body_bytes: int,
                 on_error: Callable[[ServiceError, Headers], Response]) -> None:
        self.app, self.keys, self.max_body_bytes, self.on_error = app, keys, max_body_bytes, on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        try:
            if self.keys is not None and not str(scope["path"]).endswith(OPEN_PATHS) and not is_page_path(scope):
                self.keys.check(headers.get("authorization"))
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                return await self.app(scope, receive, send)
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media and media != "application/json" and not media.endswith("+json"):
                raise UnsupportedMediaType(f"content-type must be application/json, got {media[:64]!r}", "body")
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise PayloadTooLarge(f"the body is over {self.max_body_bytes} bytes", "body")
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client left before sending its body
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLarge(f"the body is over {self.max_body_bytes} bytes", "body")
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
        except ServiceError as e:
            return await self.on_error(e, headers)(scope, receive, send)
        body, sent = b"".join(chunks), False
        try:
            body.decode("utf-8")  # JSON text is UTF-8 (RFC 8259)
        except UnicodeDecodeError:
            return await self.on_error(MalformedRequest("the body is not UTF-8", "body"), headers)(scope, receive, send)
        if not media:  # read as JSON: say so to the routes
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then disconnects pass through

        return await self.app(scope, replay, send)


class ImageGenerationBody(BaseModel):
    """A request for `n` images of one class."""

    # strict: no coercion ("2" is not 2, true is not 1); unknown fields are errors
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"class_id": 3, "n": 2, "seed": 7}]})

    class_id: int | Name | None = Field(
        None, description="Class to generate: its integer id, or its name as listed by GET /v1/models. "
                          "Required unless `prompt` gives the class name.")
    prompt: Name | None = Field(None, description="OpenAI compatibility: a class name, used when `class_id` is absent.")
    n: int = Field(1, ge=1, description="Number of images, 1 to the configured maximum (16 by default).")
    seed: int | None = Field(None, ge=0, description="Seed of the first image (image i uses seed + i). Same seed "
                                                     "and settings give the same image. Random when absent.")
    cfg_scale: float | None = Field(None, ge=0, allow_inf_nan=False, description="Classifier-free guidance scale "
                                    "(>= 0; 1 disables guidance). Default: the model's.")
    temperature: float | None = Field(None, gt=0, allow_inf_nan=False, description="Sampling temperature of the "
                                      "diffusion head (> 0). Default: the model's.")
    num_steps: int | None = Field(None, ge=1, description="Masked-autoregressive steps (>= 1). Default: the model's.")
    model: Name | None = Field(None, description="Model id (GET /v1/models); default: the served model.")
    response_format: Literal["b64_json", "png"] = Field(
        "b64_json", description="`b64_json`: a JSON answer with base64 PNGs; `png`: the raw PNG bytes (n=1 only).")
    user: Name | None = Field(None, description="OpenAI compatibility: ignored.")
    stream: bool = Field(False, description="Answer Server-Sent Events (text/event-stream): `preview` events "
                         "with the partial image every `preview_every` steps, then a `final` event carrying the "
                         "non-stream answer (b64_json only); an `error` event if it fails mid-way. See README.")
    preview_every: int | None = Field(None, ge=1, description="With `stream`: AR steps between previews "
                                      "(default: about 8 previews per image).")

    def to_domain(self) -> ImageRequest:
        class_id = self.class_id if self.class_id is not None else self.prompt
        if class_id is None:
            raise InvalidRequest("give `class_id` (an id or a class name)", "class_id")
        return ImageRequest(class_id=class_id, n=self.n, seed=self.seed, cfg_scale=self.cfg_scale,
                            temperature=self.temperature, num_steps=self.num_steps, model=self.model)


class ImageData(BaseModel):
    b64_json: str = Field(description="The image as a base64-encoded PNG.")
    seed: int = Field(description="The seed that reproduces this image.")
    class_id: int = Field(description="The class id of this image.")


class ImagesResponse(BaseModel):
    created: int = Field(description="Unix time of the answer.")
    model: str = Field(description="Id of the model that generated the images.")
    data: list[ImageData] = Field(description="The images, in seed order.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code.")
    message: str = Field(description="What was wrong.")
    field: str | None = Field(None, description="The request field at fault, when one is.")
    request_id: str = Field(description="Id of the request in the service's logs.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ClassCard(BaseModel):
    id: int
    name: str


class OutputCard(BaseModel):
    width: int
    height: int
    channels: int
    format: str


class ModelCard(BaseModel):
    id: str = Field(description="Model id, for the `model` field of requests.")
    object: str = "model"
    modality: str = Field(description="image, speech or video.")
    classes: list[ClassCard] = Field(description="Every class: id and name.")
    output: OutputCard = Field(description="Size of each output.")
    defaults: dict[str, Any] = Field(description="Sampler defaults used when a request leaves a setting out.")


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in (
        (400, "Malformed JSON (or not UTF-8)."), (422, "An invalid field (named in `field`)."),
        (401, "Missing or invalid API key (when keys are configured)."), (413, "The body is too large."),
        (415, "The body is not JSON (content-type)."),
        (429, "Queue full; retry after `Retry-After` seconds."), (503, "Not ready or shutting down."),
        (504, "The request's deadline passed."), (500, "Unexpected failure (logged with the request id)."))
}


def _field_of(errors: list[Any]) -> tuple[str, str, bool]:
    """(field, message, malformed JSON?) of pydantic's first error."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    malformed = any(e.get("type") == "json_invalid" for e in errors)
    msg = str(first.get("msg", "invalid request"))
    if len(loc) > 1 and loc[1] in ("int", "str"):  # a member of `int | str` (class_id): name the field itself
        msg = "must be an integer id or a class name (string); " + msg[:1].lower() + msg[1:]
    return (loc[0] if loc else "body"), msg, malformed


def create_app(backend: ImageBackend, config: AppConfig | None = None,
               metrics: ServiceMetrics | None = None, video: VideoBackend | None = None,
               speech: SpeechBackend | None = None) -> FastAPI:
    """The REST app over `backend` (images), `video` (POST /v1/videos) and `speech` (POST /v1/speech,
    /v1/audio/speech); None: no model of that modality, 501."""
    cfg = config or AppConfig()
    stats = metrics or ServiceMetrics()
    app = FastAPI(title="djepa", version="1", description="Class-conditional image generation with D-JEPA "
                  "(service.md). Errors answer `{\"error\": {code, message, field, request_id}}`.")
    app.state.metrics = stats
    model_label = {"id": cfg.engine.name or "unknown"}
    keys = ApiKeys.from_sources(cfg.api_keys_file, cfg.api_keys_env)

    def error_response(exc: BaseException, request_id: str) -> Response:
        answer = to_answer(exc, request_id)
        if not isinstance(exc, ServiceError):
            log.error("request %s failed", request_id, exc_info=exc)
        stats.reject(model_label["id"], answer.reason)
        return Response(answer.body, status_code=answer.http_status, headers=answer.headers,
                        media_type="application/json")

    def request_id_of(request: Request) -> str:
        return clean_request_id(request.headers.get("x-request-id"))

    app.add_middleware(EdgeGuard, keys=keys, max_body_bytes=cfg.max_body_bytes,
                       on_error=lambda e, h: error_response(e, clean_request_id(h.get("x-request-id"))))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        field, msg, malformed = _field_of(list(exc.errors()))
        if field == "body" and not malformed:  # not an object: is it JSON at all?
            try:
                json.loads(await request.body())
            except ValueError:
                malformed, msg = True, "the body is not JSON"
        err: ServiceError = MalformedRequest(f"malformed JSON: {msg}", "body") if malformed else \
            InvalidRequest(f"{field}: {msg}", field)
        return error_response(err, request_id_of(request))

    @app.middleware("http")
    async def record_duration(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        endpoint = next((e for e in COUNTED if request.url.path.endswith(e)), None)  # any route prefix
        if endpoint is not None:
            stats.observe_request(endpoint, model_label["id"], response.status_code, time.perf_counter() - t0)
        return response

    async def info_or_not_ready() -> ModelInfo:
        info = await backend.model_info()
        model_label["id"] = info.id
        return info

    def deadline_of(request: Request) -> float:
        raw = request.headers.get(TIMEOUT_HEADER)
        return cfg.request_timeout_s if raw is None else parse_timeout(raw, TIMEOUT_HEADER, cfg.request_timeout_s)

    async def generate(body: ImageGenerationBody, request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            info = await info_or_not_ready()
            items = expand(body.to_domain(), info, cfg.max_images_per_request)
            if body.response_format == "png" and len(items) != 1:
                raise InvalidRequest("response_format 'png' answers one image: use n=1, or b64_json",
                                     "response_format")
            timeout = deadline_of(request)
            if body.stream:
                return await stream_response(info, items, timeout, body, request_id)
            with stats.in_flight_request(info.id):
                results = await generate_all(backend, items, timeout)
            stats.observe_outputs(info.id, info.modality, [r.stats for r in results])
        except Exception as e:
            return error_response(e, request_id)
        headers = {"X-Request-Id": request_id}
        if body.response_format == "png":
            out = results[0].output
            headers.update({"X-Seed": str(out.seed), "X-Class-Id": str(out.class_id)})
            return Response(out.png, media_type="image/png", headers=headers)
        return JSONResponse(images_answer(info, results).model_dump(), headers=headers)

    def images_answer(info: ModelInfo, results: list[GeneratedImage]) -> ImagesResponse:
        return ImagesResponse(created=int(time.time()), model=info.id, data=[
            ImageData(b64_json=base64.b64encode(r.output.png).decode(), seed=r.output.seed,
                      class_id=r.output.class_id) for r in results])

    async def stream_response(info: ModelInfo, items: list[ImageItem], timeout: float, body: ImageGenerationBody,
                              request_id: str) -> Response:
        """`"stream": true`: Server-Sent Events (ingress/streaming.py). An error before the first event is a
        plain error answer (its HTTP status); after it, an `error` event with the same body ends the stream."""
        if body.response_format == "png":
            raise InvalidRequest("a stream answers b64_json events: leave out response_format 'png'",
                                 "response_format")
        streamer = backend if hasattr(backend, "generate_stream") else None
        if streamer is None:
            raise InvalidRequest("this service does not stream images", "stream")
        every = preview_every_for(body.preview_every, items[0].num_steps)
        events = stream_images(cast(ImageStreamBackend, streamer), items, timeout, every)
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise

        def encode(event: IndexedPreview | list[GeneratedImage]) -> bytes:
            if isinstance(event, IndexedPreview):
                item, p = items[event.index], event.preview
                return sse("preview", {"index": event.index, "step": p.step, "num_steps": p.num_steps,
                                       "seed": item.seed, "class_id": item.class_id,
                                       "b64_json": base64.b64encode(p.png).decode()})
            stats.observe_outputs(info.id, info.modality, [r.stats for r in event])
            return sse("final", images_answer(info, event).model_dump())

        async def sse_body() -> AsyncIterator[bytes]:
            with stats.in_flight_request(info.id):
                try:
                    event = first
                    while True:
                        yield encode(event)
                        if isinstance(event, list):
                            return
                        event = await anext(events)
                except Exception as e:
                    answer = to_answer(e, request_id)
                    if not isinstance(e, ServiceError):
                        log.error("request %s failed", request_id, exc_info=e)
                    stats.reject(model_label["id"], answer.reason)
                    yield sse("error", json.loads(answer.body))
                finally:
                    await events.aclose()

        return StreamingResponse(sse_body(), media_type="text/event-stream",
                                 headers={"X-Request-Id": request_id, "Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    png_answer: dict[int | str, dict[str, Any]] = {200: {
        "model": ImagesResponse, "description": "JSON with base64 PNGs, or (response_format png) the PNG bytes.",
        "content": {"image/png": {}}}}

    @app.post("/v1/images", responses={**png_answer, **ERRORS}, summary="Generate images of one class")
    async def create_images(body: ImageGenerationBody, request: Request) -> Response:
        return await generate(body, request)

    @app.post("/v1/images/generations", responses={**png_answer, **ERRORS},
              summary="OpenAI-style alias of POST /v1/images")
    async def create_images_openai(body: ImageGenerationBody, request: Request) -> Response:
        return await generate(body, request)

    @app.get("/v1/models", response_model=ModelList, responses={503: ERRORS[503]}, summary="The loaded models")
    async def list_models(request: Request) -> Response:
        try:
            info = await info_or_not_ready()
        except Exception as e:
            return error_response(e, request_id_of(request))
        data = [info.to_json()]
        if video is not None:
            with contextlib.suppress(ServiceError):  # not loaded (yet): listed once it answers; /readyz says why
                data.append((await video.model_info()).to_json())
        if speech is not None:
            with contextlib.suppress(ServiceError):
                data.append((await speech.model_info()).to_json())
        return JSONResponse({"object": "list", "data": data})

    @app.get("/healthz", summary="200 while the process lives")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: ERRORS[503]}, summary="200 once every configured model answers")
    async def readyz(request: Request) -> Response:
        try:
            info = await asyncio.wait_for(ready_info(backend), cfg.ready_timeout_s)
            video_info = await asyncio.wait_for(ready_info(video), cfg.ready_timeout_s) if video is not None else None
            speech_info = (await asyncio.wait_for(ready_info(speech), cfg.ready_timeout_s)
                           if speech is not None else None)
        except TimeoutError:
            return error_response(NotReady("the generator did not answer in time"), request_id_of(request))
        except Exception as e:
            return error_response(e if isinstance(e, ServiceError) else NotReady(f"not ready: {type(e).__name__}"),
                                  request_id_of(request))
        models = [info.id] + ([video_info.id] if video_info else []) + ([speech_info.id] if speech_info else [])
        return JSONResponse({"status": "ready", "models": models})

    @app.get("/metrics", summary="Prometheus text exposition of the djepa_* metrics",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        body, content_type = stats.exposition()
        return Response(body, media_type=content_type)

    add_video_routes(app, video, stats, deadline_of, request_id_of, ERRORS)
    add_speech_routes(app, speech, stats, deadline_of, request_id_of, ERRORS)
    add_playground_routes(app)  # the page at `/` (issue 9)
    return app

