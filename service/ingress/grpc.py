"""The gRPC ingress: `djepa.v1.Generation` (proto/djepa/v1/generation.proto) and `grpc.health.v1`.

A thin adapter over the same `ImageBackend` as REST: protobuf -> domain dataclasses here and nowhere
else, then the shared validation (batching.expand), deadline and error mapping (errors.py). No Ray:
deployments.py forwards Ray Serve's gRPC calls to `GenerationServicer`, and tests can serve it from a
plain `grpc.aio` server with an injected backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol, TypeVar, cast

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2

from service.auth import ApiKeys
from service.batching import expand, expand_speech, expand_video
from service.config import AppConfig
from service.errors import InvalidRequest, QueueFull, ServiceError, to_answer
from service.ingress.common import (
    ImageBackend,
    SpeechBackend,
    VideoBackend,
    clean_request_id,
    generate_all,
    generate_one,
    generate_speech,
    generate_video,
    parse_timeout,
    ready_info,
)
from service.ingress.streaming import ImageStreamBackend, IndexedPreview, preview_every_for, stream_images
from service.metrics import ServiceMetrics
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.types import GeneratedImage, ImageRequest, ModelInfo, SpeechRequest, VideoRequest

log = logging.getLogger("djepa.service")

SERVICE = "djepa.v1.Generation"
TIMEOUT_METADATA = "x-request-timeout"  # seconds; lowers the deadline, as REST's X-Request-Timeout
FIELD_METADATA = "djepa-error-field"  # trailing metadata of INVALID_ARGUMENT: the field at fault
AUDIO_CHUNK_BYTES = 65536  # most bytes in one AudioChunk (generation.proto)
_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

M = TypeVar("M")


class Context(Protocol):
    """What the servicer uses of a call's context: grpc.aio's ServicerContext and Ray Serve's
    RayServegRPCContext both have it."""

    def set_code(self, code: grpc.StatusCode) -> object: ...

    def set_details(self, details: str) -> object: ...

    def set_trailing_metadata(self, trailing_metadata: list[tuple[str, str]]) -> object: ...

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None: ...


def metadata(context: Context) -> dict[str, str]:
    return {str(k).lower(): v if isinstance(v, str) else v.decode(errors="replace")
            for k, v in (context.invocation_metadata() or ())}


def grpc_timeout_s(raw: str) -> float | None:
    """The `grpc-timeout` header ("100m", "5S", ...) in seconds; None when unreadable."""
    unit = _GRPC_TIMEOUT_UNITS.get(raw[-1:])
    return float(raw[:-1]) * unit if unit is not None and raw[:-1].isdigit() else None


def image_request_from_pb(request: pb.GenerateImagesRequest) -> ImageRequest:
    which = request.WhichOneof("class_ref")
    if which is None:
        raise InvalidRequest("give class_id (an id) or class_name (a class name)", "class_id")
    return ImageRequest(
        class_id=request.class_id if which == "class_id" else request.class_name,
        n=request.n if request.HasField("n") else 1,
        seed=request.seed if request.HasField("seed") else None,
        cfg_scale=request.cfg_scale if request.HasField("cfg_scale") else None,
        temperature=request.temperature if request.HasField("temperature") else None,
        num_steps=request.num_steps if request.HasField("num_steps") else None,
        model=request.model if request.HasField("model") else None)


_VIDEO_FORMATS = {pb.VIDEO_FORMAT_UNSPECIFIED: "gif", pb.VIDEO_FORMAT_GIF: "gif", pb.VIDEO_FORMAT_WEBP: "webp",
                  pb.VIDEO_FORMAT_NPZ: "npz"}


def video_request_from_pb(request: pb.GenerateVideoRequest) -> VideoRequest:
    which = request.WhichOneof("class_ref")
    if which is None:
        raise InvalidRequest("give class_id (an id) or class_name (a class name)", "class_id")
    fmt = _VIDEO_FORMATS.get(request.response_format)
    if fmt is None:
        raise InvalidRequest(f"unknown response_format {request.response_format}", "response_format")
    return VideoRequest(
        class_id=request.class_id if which == "class_id" else request.class_name,
        seed=request.seed if request.HasField("seed") else None,
        num_frames=request.num_frames if request.HasField("num_frames") else None,
        model=request.model if request.HasField("model") else None,
        response_format=fmt)


_AUDIO_FORMATS = {pb.AUDIO_FORMAT_UNSPECIFIED: "wav", pb.AUDIO_FORMAT_WAV: "wav", pb.AUDIO_FORMAT_FLAC: "flac",
                  pb.AUDIO_FORMAT_PCM: "pcm"}


def speech_request_from_pb(request: pb.GenerateSpeechRequest) -> SpeechRequest:
    fmt = _AUDIO_FORMATS.get(request.response_format)
    if fmt is None:
        raise InvalidRequest(f"unknown response_format {request.response_format}", "response_format")
    return SpeechRequest(
        text=request.text,
        seed=request.seed if request.HasField("seed") else None,
        speed=request.speed if request.HasField("speed") else None,
        model=request.model if request.HasField("model") else None,
        response_format=fmt)


def audio_chunks(data: bytes, content_type: str, sample_rate: int, seed: int) -> list[pb.AudioChunk]:
    """`data` in chunks of at most AUDIO_CHUNK_BYTES; the first one carries the metadata."""
    parts = [data[i: i + AUDIO_CHUNK_BYTES] for i in range(0, len(data), AUDIO_CHUNK_BYTES)] or [b""]
    return [pb.AudioChunk(data=parts[0], content_type=content_type, sample_rate=sample_rate, seed=seed),
            *(pb.AudioChunk(data=part) for part in parts[1:])]


def model_to_pb(info: ModelInfo) -> pb.Model:
    defaults = struct_pb2.Struct()
    defaults.update(dict(info.defaults))
    return pb.Model(id=info.id, modality=info.modality,
                    classes=[pb.ModelClass(id=i, name=name) for i, name in enumerate(info.classes)],
                    output=pb.OutputSize(width=info.width, height=info.height, channels=info.channels,
                                         format=info.formats[0], sample_rate=info.sample_rate,
                                         max_text_chars=info.max_text_chars),
                    defaults=defaults)


def images_to_pb(info: ModelInfo, results: list[GeneratedImage]) -> pb.GenerateImagesResponse:
    return pb.GenerateImagesResponse(created=int(time.time()), model=info.id, images=[
        pb.Image(png=r.output.png, seed=r.output.seed, class_id=r.output.class_id, width=r.output.width,
                 height=r.output.height) for r in results])


class GenerationServicer:
    """`djepa.v1.Generation` and `grpc.health.v1.Health` over `backend`. Every RPC is counted in
    `djepa_request_duration_seconds` with endpoint "/djepa.v1.Generation/<RPC>" and status the gRPC
    code name; errors go through errors.to_answer, as REST's."""

    def __init__(self, backend: ImageBackend, config: AppConfig | None = None,
                 metrics: ServiceMetrics | None = None, video: VideoBackend | None = None,
                 speech: SpeechBackend | None = None) -> None:
        self.backend = backend
        self.video = video  # None: GenerateVideo answers UNIMPLEMENTED
        self.speech = speech  # None: GenerateSpeech answers UNIMPLEMENTED
        self.config = config or AppConfig()
        self.metrics = metrics or ServiceMetrics()
        self.model_id = self.config.engine.name or "unknown"  # the model label until the model answers
        self.keys = ApiKeys.from_sources(self.config.api_keys_file, self.config.api_keys_env)

    # djepa.v1.Generation

    async def generate_images(self, request: pb.GenerateImagesRequest, context: Context) -> pb.GenerateImagesResponse:
        async def work() -> pb.GenerateImagesResponse:
            info = await self._info()
            items = expand(image_request_from_pb(request), info, self.config.max_images_per_request)
            timeout = self._deadline(context)
            with self.metrics.in_flight_request(info.id):
                results = await generate_all(self.backend, items, timeout)
            self.metrics.observe_outputs(info.id, info.modality, [r.stats for r in results])
            return images_to_pb(info, results)

        return await self._unary("GenerateImages", context, work, pb.GenerateImagesResponse)

    async def generate_images_stream(self, request: pb.GenerateImagesRequest,
                                     context: Context) -> AsyncIterator[pb.GenerateImagesEvent]:
        """GenerateImages with previews (ingress/streaming.py): preview events, then the `final` answer. An
        error ends the stream with its status (errors.py's mapping), as the unary RPCs'."""
        rpc, t0, status = "GenerateImagesStream", time.perf_counter(), "CANCELLED"
        try:
            if self.keys is not None:
                self.keys.check(metadata(context).get("authorization"))
            info = await self._info()
            items = expand(image_request_from_pb(request), info, self.config.max_images_per_request)
            streamer = self.backend if hasattr(self.backend, "generate_stream") else None
            if streamer is None:
                raise InvalidRequest("this service does not stream images", "preview_every")
            every = preview_every_for(request.preview_every if request.HasField("preview_every") else None,
                                      items[0].num_steps)
            timeout = self._deadline(context)
            with self.metrics.in_flight_request(info.id):
                events = stream_images(cast(ImageStreamBackend, streamer), items, timeout, every)
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, IndexedPreview):
                            item, p = items[event.index], event.preview
                            yield pb.GenerateImagesEvent(preview=pb.ImagePreview(
                                index=event.index, step=p.step, num_steps=p.num_steps, png=p.png, seed=item.seed,
                                class_id=item.class_id))
                        else:
                            self.metrics.observe_outputs(info.id, info.modality, [r.stats for r in event])
                            yield pb.GenerateImagesEvent(final=images_to_pb(info, event))
            status = "OK"
        except Exception as e:
            status = self._fail(e, context, clean_request_id(metadata(context).get("x-request-id")))
        finally:
            self.metrics.observe_request(f"/{SERVICE}/{rpc}", self.model_id, status, time.perf_counter() - t0)

    async def generate_speech(self, request: pb.GenerateSpeechRequest,
                              context: Context) -> AsyncIterator[pb.AudioChunk]:
        """The audio (REST's bytes for the same request) in chunks of at most AUDIO_CHUNK_BYTES, the first
        with the content type, sample rate and seed; UNIMPLEMENTED ("no speech model is deployed") without a
        speech generator."""

        async def work() -> list[pb.AudioChunk]:
            _, result = await generate_one(self.speech, "speech",
                                           lambda info: expand_speech(speech_request_from_pb(request), info),
                                           generate_speech, lambda: self._deadline(context), self.metrics)
            out = result.output
            return audio_chunks(out.data, out.media_type, out.sample_rate, out.seed)

        no_chunks: Callable[[], list[pb.AudioChunk]] = list
        for chunk in await self._unary("GenerateSpeech", context, work, no_chunks):
            yield chunk

    async def generate_video(self, request: pb.GenerateVideoRequest, context: Context) -> pb.GenerateVideoResponse:
        async def work() -> pb.GenerateVideoResponse:
            info, result = await generate_one(self.video, "video",
                                              lambda info: expand_video(video_request_from_pb(request), info),
                                              generate_video, lambda: self._deadline(context), self.metrics)
            out = result.output
            return pb.GenerateVideoResponse(data=out.data, content_type=out.media_type, model=info.id, seed=out.seed,
                                            class_id=out.class_id)

        return await self._unary("GenerateVideo", context, work, pb.GenerateVideoResponse)

    async def list_models(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        async def work() -> pb.ListModelsResponse:
            models = [model_to_pb(await self._info())]
            if self.video is not None:
                with contextlib.suppress(ServiceError):  # not loaded (yet): listed once it answers
                    models.append(model_to_pb(await self.video.model_info()))
            if self.speech is not None:
                with contextlib.suppress(ServiceError):
                    models.append(model_to_pb(await self.speech.model_info()))
            return pb.ListModelsResponse(models=models)

        return await self._unary("ListModels", context, work, pb.ListModelsResponse)

    # grpc.health.v1.Health (not counted, as REST's /healthz and /readyz)

    async def health_check(self, request: health_pb2.HealthCheckRequest,
                           context: Context) -> health_pb2.HealthCheckResponse:
        """SERVING once the generator answers (REST's /readyz), NOT_SERVING before; service "" (the
        server) or "djepa.v1.Generation"; NOT_FOUND for any other service."""
        if request.service not in ("", SERVICE):
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"unknown service {request.service!r}; this server has {SERVICE!r}")
            return health_pb2.HealthCheckResponse()
        try:
            await asyncio.wait_for(ready_info(self.backend), self.config.ready_timeout_s)
        except (TimeoutError, ServiceError):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    # one path for every RPC: deadline, metrics, errors

    async def _info(self) -> ModelInfo:
        info = await self.backend.model_info()
        self.model_id = info.id
        return info

    def _deadline(self, context: Context) -> float:
        """The smallest of the configured timeout, the `x-request-timeout` metadata, and the
        client's own deadline (`grpc-timeout`, where the server sees it)."""
        md = metadata(context)
        timeout = self.config.request_timeout_s
        if TIMEOUT_METADATA in md:
            timeout = parse_timeout(md[TIMEOUT_METADATA], TIMEOUT_METADATA, timeout)
        client = grpc_timeout_s(md.get("grpc-timeout", ""))
        time_remaining: Callable[[], float | None] | None = getattr(context, "time_remaining", None)
        remaining = time_remaining() if time_remaining is not None else None
        return min(t for t in (timeout, client, remaining) if t is not None)

    async def _unary(self, rpc: str, context: Context, work: Callable[[], Awaitable[M]], empty: Callable[[], M]) -> M:
        t0 = time.perf_counter()
        status = "CANCELLED"  # when the client leaves or its deadline passes (the work is cancelled)
        try:
            if self.keys is not None:  # metadata `authorization: Bearer <key>`, as REST's header
                self.keys.check(metadata(context).get("authorization"))
            result = await work()
            status = "OK"
            return result
        except Exception as e:
            status = self._fail(e, context, clean_request_id(metadata(context).get("x-request-id")))
            return empty()
        finally:
            self.metrics.observe_request(f"/{SERVICE}/{rpc}", self.model_id, status, time.perf_counter() - t0)

    def _fail(self, exc: Exception, context: Context, request_id: str) -> str:
        """Set the code and details of `exc` (errors.py's one mapping) on `context`; the code name."""
        answer = to_answer(exc, request_id)
        if not isinstance(exc, ServiceError):
            log.error("request %s failed", request_id, exc_info=exc)
        self.metrics.reject(self.model_id, answer.reason)
        error = json.loads(answer.body)["error"]
        details = f"{error['field']}: {error['message']}" if "field" in error else str(error["message"])
        trailing = [("x-request-id", request_id), ("djepa-error-code", str(error["code"]))]
        if "field" in error:
            trailing.append((FIELD_METADATA, str(error["field"])))
        if isinstance(exc, QueueFull):
            trailing.append(("retry-after", str(exc.retry_after_s)))
        context.set_code(getattr(grpc.StatusCode, answer.grpc_status))
        context.set_details(details)
        context.set_trailing_metadata(trailing)
        return answer.grpc_status

