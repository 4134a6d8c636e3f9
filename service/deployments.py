"""Ray Serve deployments: the image generator (batched) and the ingress (FastAPI + gRPC), and the app builder.

`app_builder` is the `import_path` of deploy/serve.yaml, so the same file drives `djepa serve` and
`serve run` / `serve deploy` on an existing cluster (where Ray applies the file's `deployments:`
options; `djepa serve` applies them with `.options`). No tensor maths here.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from ray.util import metrics as ray_metrics

from service.config import AppConfig, BatchConfig, EngineConfig
from service.engine import TorchImageEngine
from service.errors import DeadlineExceeded, NotReady, QueueFull, redact_paths
from service.ingress.grpc import GenerationServicer
from service.ingress.http import create_app
from service.metrics import ServiceMetrics
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.scheduler import StepScheduler
from service.types import GeneratedImage, ImageItem, ImagePreview, ModelInfo

GENERATOR = "ImageGenerator"
INGRESS = "Ingress"
DEFAULT_BATCH = BatchConfig()
log = logging.getLogger("djepa.service")


@dataclasses.dataclass
class _Pending:
    """An item waiting in the generator's batch queue: its deadline (unix time) and whether its
    batch has started (a cancel before that means no work was spent on it)."""

    item: ImageItem
    arrived: float  # perf_counter at arrival
    deadline: float | None
    started: bool = False


@dataclasses.dataclass(frozen=True)
class Refused:
    """The generator's answer when it will not do the work: returned, not raised, so that an expected
    refusal (a deadline passed, the model failed to load) is no error in the replica's log.
    HandleBackend turns it into the service error."""

    kind: str  # "deadline", "not_ready" or "queue_full" (continuous batching: the replica holds its maximum)
    message: str

    def error(self, retry_after_s: int = 1) -> DeadlineExceeded | NotReady | QueueFull:
        if self.kind == "queue_full":
            return QueueFull(self.message, retry_after_s)
        return DeadlineExceeded(self.message) if self.kind == "deadline" else NotReady(self.message)


LATE = Refused("deadline", "the request's deadline passed before its batch started")


@serve.deployment(name=GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_BATCH.max_batch_size, max_queued_requests=256,
                  user_config=dataclasses.asdict(DEFAULT_BATCH))
class ImageGeneratorDeployment:
    """One engine per replica; items arriving together run as one `@serve.batch` (list in, list out), or
    with `batching: continuous` (user_config) through the step scheduler (scheduler.py), which also serves
    the preview streams (`generate_stream`) in either mode."""

    def __init__(self, engine: Mapping[str, Any]) -> None:
        config = EngineConfig.from_dict(dict(engine))
        self.batch = DEFAULT_BATCH
        self.skipped: collections.Counter[str] = collections.Counter()  # items dropped unstarted, by reason
        # the same count on Ray's metrics port (summed over replicas by Prometheus): work never started
        self._skipped_metric = ray_metrics.Counter(
            "djepa_skipped_items_total", description="Items dropped by the generator before their batch "
            "started: deadline passed, or caller gone (cancelled).", tag_keys=("model", "reason"))
        self._engine: TorchImageEngine | None = None
        self.load_error: str | None = None
        try:
            self._engine = TorchImageEngine.load(config)
        except Exception as e:  # never half-serve: stay up, not ready, with the reason (paths removed)
            log.exception("the model failed to load")
            first = (str(e).strip().splitlines() or [""])[0]
            self.load_error = redact_paths(f"the model failed to load: {type(e).__name__}: {first}")
        self.model_id = self._engine.info.id if self._engine is not None else (config.name or "unknown")
        self.scheduler = StepScheduler(self._engine, self.batch.max_in_flight, self.batch.max_waiting,
                                       on_drop=self._on_drop) if self._engine is not None else None

    def _on_drop(self, reason: str, started: bool) -> None:
        """The scheduler dropped an image unfinished: counted with the batch path's skips when unstarted."""
        if not started:
            self._skip(reason)

    def _skip(self, reason: str, count: int = 1) -> None:
        if count > 0:
            self.skipped[reason] += count
            self._skipped_metric.inc(count, tags={"model": self.model_id, "reason": reason})

    @property
    def engine(self) -> TorchImageEngine:
        if self._engine is None:
            raise NotReady(self.load_error or "the model is not loaded")
        return self._engine

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Live batching changes (`user_config` of deploy/serve.yaml)."""
        self.batch = BatchConfig.from_dict(dict(user_config))
        self._run_batch.set_max_batch_size(self.batch.max_batch_size)  # type: ignore[attr-defined]
        self._run_batch.set_batch_wait_timeout_s(self.batch.batch_wait_timeout_s)  # type: ignore[attr-defined]
        if self.scheduler is not None:
            self.scheduler.configure(self.batch.max_in_flight, self.batch.max_waiting)

    def _not_loaded(self) -> Refused:
        return Refused("not_ready", self.load_error or "the model is not loaded")

    async def info(self) -> ModelInfo | Refused:
        return self._engine.info if self._engine is not None else self._not_loaded()

    async def batch_config(self) -> BatchConfig:
        return self.batch

    async def work_stats(self) -> dict[str, Any]:
        """This replica's process id and the items it dropped unstarted, by reason ("deadline":
        passed before its batch started; "cancelled": its caller left while it waited)."""
        return {"pid": os.getpid(), "skipped": dict(self.skipped)}

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage | Refused:
        """The image of `item`, or a Refused: the model failed to load, or `deadline` (unix time) passed
        before the item's batch started."""
        if self._engine is None:
            return self._not_loaded()
        if deadline is not None and time.time() >= deadline:
            self._skip("deadline")
            return LATE
        if self.batch.batching == "continuous":
            return await self._submit(item, deadline)
        pending = _Pending(item, time.perf_counter(), deadline)
        try:
            result: GeneratedImage | Refused = await self._run_batch(pending)
        except asyncio.CancelledError:  # the caller left (client gone, deadline passed): Ray drops it
            if not pending.started:
                self._skip("cancelled")
            raise
        return result

    async def _submit(self, item: ImageItem, deadline: float | None) -> GeneratedImage | Refused:
        """`item` through the step scheduler; expected refusals returned (a cancelled caller cancels the work)."""
        assert self.scheduler is not None
        try:
            return await self.scheduler.submit(item, deadline)
        except QueueFull as e:
            return Refused("queue_full", e.message)
        except DeadlineExceeded as e:
            return Refused("deadline", e.message)

    async def generate_stream(self, item: ImageItem, deadline: float | None = None,
                              preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage | Refused]:
        """Previews of `item` every `preview_every` steps, then the image (or one Refused), always through the
        step scheduler. A streaming handle call (`handle.options(stream=True)`); cancelling it cancels the work."""
        if self._engine is None:
            yield self._not_loaded()
            return
        if deadline is not None and time.time() >= deadline:
            self._skip("deadline")
            yield LATE
            return
        assert self.scheduler is not None
        try:
            async for event in self.scheduler.stream(item, deadline, preview_every):
                yield event
        except QueueFull as e:
            yield Refused("queue_full", e.message)
        except DeadlineExceeded as e:
            yield Refused("deadline", e.message)

    @serve.batch(max_batch_size=DEFAULT_BATCH.max_batch_size, batch_wait_timeout_s=DEFAULT_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[_Pending]) -> list[GeneratedImage | Refused]:
        start, now = time.perf_counter(), time.time()
        live = [e for e in entries if e.deadline is None or now < e.deadline]  # nobody waits for the rest
        self._skip("deadline", len(entries) - len(live))
        for e in live:
            e.started = True
        # the pass runs in a thread so this replica keeps accepting (queueing) items meanwhile
        results = await asyncio.to_thread(self.engine.generate, [e.item for e in live]) if live else []
        done = {id(e): GeneratedImage(out, dataclasses.replace(stats, queue_wait_s=max(0.0, start - e.arrived)))
                for (out, stats), e in zip(results, live, strict=True)}
        return [done.get(id(e), LATE) for e in entries]


class HandleBackend:
    """`ImageBackend` over a deployment handle to the generator; Ray's errors become service errors."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        self.handle = handle
        self.retry_after_s = retry_after_s
        self._info: ModelInfo | None = None

    async def model_info(self, fresh: bool = False) -> ModelInfo:
        if self._info is None or fresh:
            try:
                info: ModelInfo | Refused = await self.handle.info.remote()
                if isinstance(info, Refused):
                    raise info.error()
                self._info = info
            except BackPressureError:
                if self._info is None:  # busy, not broken: it answered nobody yet because it is full
                    raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
            except DeploymentUnavailableError:
                raise NotReady("the image generator is not available") from None
        assert self._info is not None
        return self._info

    async def check_ready(self) -> ModelInfo:
        """The generator's model info asked now (readiness: a dead or failed generator shows)."""
        return await self.model_info(fresh=True)

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        try:
            response = self.handle.generate.remote(item, deadline)
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        try:
            result: GeneratedImage | Refused = await response
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        except DeploymentUnavailableError:
            raise NotReady("the image generator is not available") from None
        except asyncio.CancelledError:
            response.cancel()  # type: ignore[no-untyped-call]  # deadline passed or the client left: stop the work
            raise
        if isinstance(result, Refused):
            raise result.error(self.retry_after_s)
        return result

    async def generate_stream(self, item: ImageItem, deadline: float | None = None,
                              preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage]:
        """Previews of `item`, then its image (ingress/streaming.py's ImageStreamBackend); Ray's errors and refusals
        become service errors. Closing the iterator early cancels the work."""
        try:
            stream: DeploymentResponseGenerator[Any] = self.handle.options(  # type: ignore[assignment]
                stream=True).generate_stream.remote(item, deadline, preview_every)
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        try:
            async for event in stream:
                if isinstance(event, Refused):
                    raise event.error(self.retry_after_s)
                yield event
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        except DeploymentUnavailableError:
            raise NotReady("the image generator is not available") from None
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]  # no effect once the stream has ended


class StreamFailed(Exception):
    """Raised after a streaming RPC set an error code: Ray Serve keeps a code set on the context only
    when the method raises (a unary method returns an empty message instead)."""


@serve.deployment(name=INGRESS, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=512)
@serve.ingress()
class IngressDeployment:
    """Both doors into the generators: the FastAPI app (ingress/http.py) and the gRPC methods
    (ingress/grpc.py, through Ray Serve's gRPC proxy), over one handle backend and one metrics registry."""

    def __init__(self, generator: DeploymentHandle[Any], args: Mapping[str, Any],
                 video: DeploymentHandle[Any] | None = None, speech: DeploymentHandle[Any] | None = None) -> None:
        from service.speech_deployment import SpeechHandleBackend
        from service.video_deployment import VideoHandleBackend

        self.config = AppConfig.from_dict(dict(args))
        self.backend = HandleBackend(generator, self.config.retry_after_s)
        self.video = VideoHandleBackend(video, self.config.retry_after_s) if video is not None else None
        self.speech = SpeechHandleBackend(speech, self.config.retry_after_s) if speech is not None else None
        self.metrics = ServiceMetrics()
        self.grpc = GenerationServicer(self.backend, self.config, self.metrics, self.video, self.speech)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.backend, self.config, self.metrics, self.video, self.speech)

    # djepa.v1.Generation (method names are the RPC names: Ray Serve's gRPC proxy calls them)

    async def GenerateImages(self, request: pb.GenerateImagesRequest,
                             grpc_context: RayServegRPCContext) -> pb.GenerateImagesResponse:
        return await self.grpc.generate_images(request, grpc_context)

    async def GenerateImagesStream(self, request: pb.GenerateImagesRequest,
                                   grpc_context: RayServegRPCContext) -> AsyncIterator[pb.GenerateImagesEvent]:
        async for event in self.grpc.generate_images_stream(request, grpc_context):
            yield event
        if grpc_context.code() not in (None, grpc.StatusCode.OK):
            raise StreamFailed(grpc_context.details())

    async def GenerateSpeech(self, request: pb.GenerateSpeechRequest,
                             grpc_context: RayServegRPCContext) -> AsyncIterator[pb.AudioChunk]:
        async for chunk in self.grpc.generate_speech(request, grpc_context):
            yield chunk
        if grpc_context.code() not in (None, grpc.StatusCode.OK):
            raise StreamFailed(grpc_context.details())

    async def GenerateVideo(self, request: pb.GenerateVideoRequest,
                            grpc_context: RayServegRPCContext) -> pb.GenerateVideoResponse:
        return await self.grpc.generate_video(request, grpc_context)

    async def ListModels(self, request: pb.ListModelsRequest,
                         grpc_context: RayServegRPCContext) -> pb.ListModelsResponse:
        return await self.grpc.list_models(request, grpc_context)

    # grpc.health.v1.Health

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    grpc_context: RayServegRPCContext) -> health_pb2.HealthCheckResponse:
        return await self.grpc.health_check(request, grpc_context)

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    grpc_context: RayServegRPCContext) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The current status, once (a proxy-routed call cannot hold a stream open for changes)."""
        answer = await self.grpc.health_check(request, grpc_context)
        if grpc_context.code() not in (None, grpc.StatusCode.OK):
            raise StreamFailed(grpc_context.details())
        yield answer


def build_app(config: AppConfig, options: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The application: generator + ingress, each with `options[name]` (deploy/serve.yaml's
    `deployments:` entries) applied."""
    opts = {k: {kk: vv for kk, vv in v.items() if kk != "name"} for k, v in (options or {}).items()}
    generator_cls: Any = ImageGeneratorDeployment  # a serve.Deployment (mypy sees the class)
    ingress_cls: Any = IngressDeployment
    generator = generator_cls.options(**opts.get(GENERATOR, {})).bind(config.engine.to_dict())
    video = None
    if config.video is not None:  # the video generator (POST /v1/videos, GenerateVideo)
        from service.video_deployment import VIDEO_GENERATOR, VideoGeneratorDeployment

        video_cls: Any = VideoGeneratorDeployment
        video = video_cls.options(**opts.get(VIDEO_GENERATOR, {})).bind(dataclasses.asdict(config.video))
    speech = None
    if config.speech is not None:  # the speech generator (POST /v1/speech, /v1/audio/speech, GenerateSpeech)
        from service.speech_deployment import SPEECH_GENERATOR, SpeechGeneratorDeployment

        speech_cls: Any = SpeechGeneratorDeployment
        speech = speech_cls.options(**opts.get(SPEECH_GENERATOR, {})).bind(dataclasses.asdict(config.speech))
    return ingress_cls.options(**opts.get(INGRESS, {})).bind(generator, config.to_dict(), video, speech)


def app_builder(args: dict[str, Any]) -> Any:
    """`import_path` target of deploy/serve.yaml (`serve run` / `serve deploy` call it with `args`)."""
    return build_app(AppConfig.from_dict(args or {}))
