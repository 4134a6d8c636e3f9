"""Ray Serve deployments: the image generator (batched) and the ingress (FastAPI + gRPC), and the app builder.

`app_builder` is the `import_path` of deploy/serve.yaml, so the same file drives `djepa serve` and
`serve run` / `serve deploy` on an existing cluster (where Ray applies the file's `deployments:`
options; `djepa serve` applies them with `.options`). No tensor maths here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from djepa_core.allocator import MALLOC_ENV
from service.config import AppConfig, BatchConfig, EngineConfig
from service.engine import TorchImageEngine
from service.errors import DeadlineExceeded, QueueFull
from service.generator_deployment import LATE as LATE  # the batch path's refusal of a late item, re-exported
from service.generator_deployment import GeneratorHandle, GeneratorReplica, Pending, Refusal
from service.ingress.grpc import GenerationServicer
from service.ingress.http import create_app
from service.metrics import ServiceMetrics
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.scheduler import StepScheduler
from service.types import GeneratedImage, ImageItem, ImagePreview

GENERATOR = "ImageGenerator"
INGRESS = "Ingress"
DEFAULT_BATCH = BatchConfig()

# Environment of every generator replica's process, set at its start (glibc reads it only then): djepa_core's
# malloc settings (one arena, fixed mmap/trim thresholds), so that glibc stops handing the heap back to the
# kernel between steps and faulting it in again. With glibc's defaults 32 images of djepa-tiny64 took 320k-610k
# page faults and 4.4-5.4 s of CPU in whichever thread ran them (the replica's are `asyncio.to_thread` workers);
# with these, under 4k faults and 3.35 s (bench/step_overhead.py; bench/RESULTS.md "Page faults").
REPLICA_ENV = dict(MALLOC_ENV)


@serve.deployment(name=GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_BATCH.max_batch_size, max_queued_requests=256,
                  user_config=dataclasses.asdict(DEFAULT_BATCH))
class ImageGeneratorDeployment(GeneratorReplica):
    """One engine per replica; items arriving together run as one `@serve.batch` (list in, list out), or
    with `batching: continuous` (user_config) through the step scheduler (scheduler.py), which also serves
    the preview streams (`generate_stream`) in either mode. The rest (load failure, deadlines, cancels,
    refusals, skip counts) is generator_deployment.py's."""

    def __init__(self, engine: Mapping[str, Any]) -> None:
        config = EngineConfig.from_dict(dict(engine))
        super().__init__(lambda: TorchImageEngine.load(config), DEFAULT_BATCH, config.name)
        image = cast(TorchImageEngine | None, self._engine)
        self.scheduler = StepScheduler(image, self.batch.max_in_flight, self.batch.max_waiting,
                                       on_drop=self._on_drop) if image is not None else None

    async def work_stats(self) -> dict[str, Any]:
        """The base's, with the step scheduler's steps, image-steps (`rows`) and step seconds added to `busy_s`."""
        stats = await super().work_stats()
        if self.scheduler is not None:
            stats.update(steps=self.scheduler.steps, rows=self.scheduler.rows, phases=self.scheduler.phases,
                         calls=self.scheduler.calls,
                         busy_s=stats["busy_s"] + self.scheduler.busy_s)
        return stats

    def _on_drop(self, reason: str, started: bool) -> None:
        """The scheduler dropped an image unfinished: counted with the batch path's skips when unstarted."""
        if not started:
            self._skip(reason)

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        super().reconfigure(user_config)
        if self.scheduler is not None:
            self.scheduler.configure(self.batch.max_in_flight, self.batch.max_waiting)

    async def _queue(self, item: ImageItem, deadline: float | None) -> GeneratedImage | Refusal:
        """`item` through the step scheduler with `batching: continuous`, else the `@serve.batch` queue;
        expected refusals returned (a cancelled caller cancels the work)."""
        if self.batch.batching != "continuous":
            result: GeneratedImage | Refusal = await super()._queue(item, deadline)
            return result
        assert self.scheduler is not None
        try:
            return await self.scheduler.submit(item, deadline)
        except (QueueFull, DeadlineExceeded) as e:
            return Refusal.of(e)

    async def generate_stream(self, item: ImageItem, deadline: float | None = None,
                              preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage | Refusal]:
        """Previews of `item` every `preview_every` steps, then the image (or one Refusal), always through the
        step scheduler. A streaming handle call (`handle.options(stream=True)`); cancelling it cancels the work."""
        refusal = self._admit(item, deadline)
        if refusal is not None:
            yield refusal
            return
        assert self.scheduler is not None
        try:
            async for event in self.scheduler.stream(item, deadline, preview_every):
                yield event
        except (QueueFull, DeadlineExceeded) as e:
            yield Refusal.of(e)

    @serve.batch(max_batch_size=DEFAULT_BATCH.max_batch_size, batch_wait_timeout_s=DEFAULT_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[Pending[ImageItem]]) -> list[GeneratedImage | Refusal]:
        return await self._process_batch(entries, GeneratedImage)


class HandleBackend(GeneratorHandle[ImageItem, GeneratedImage]):
    """`ImageBackend` over a deployment handle to the generator, with its preview streams."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        super().__init__(handle, retry_after_s, "the image generator")

    async def generate_stream(self, item: ImageItem, deadline: float | None = None,
                              preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage]:
        """Previews of `item`, then its image (ingress/streaming.py's ImageStreamBackend); Ray's errors and refusals
        become service errors. Closing the iterator early cancels the work."""
        try:
            stream: DeploymentResponseGenerator[Any] = self.handle.options(  # type: ignore[assignment]
                stream=True).generate_stream.remote(item, deadline, preview_every)
        except BackPressureError:
            raise self._full() from None
        try:
            async for event in stream:
                if isinstance(event, Refusal):
                    raise event.error(self.retry_after_s)
                yield event
        except BackPressureError:
            raise self._full() from None
        except DeploymentUnavailableError:
            raise self._unavailable() from None
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


def replica_options(deployment: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` for a generator `deployment` with REPLICA_ENV in its actor's runtime_env: an options entry's
    `ray_actor_options` replaces the decorator's whole dict, so they are merged here (the entry's values win,
    and so do env vars it sets itself)."""
    actor = {**(deployment.ray_actor_options or {}), **(options.get("ray_actor_options") or {})}
    runtime_env = dict(actor.get("runtime_env") or {})
    runtime_env["env_vars"] = {**REPLICA_ENV, **(runtime_env.get("env_vars") or {})}
    return {**options, "ray_actor_options": {**actor, "runtime_env": runtime_env}}


def build_app(config: AppConfig, options: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The application: generator + ingress, each with `options[name]` (deploy/serve.yaml's
    `deployments:` entries) applied; every generator replica gets REPLICA_ENV."""
    opts = {k: {kk: vv for kk, vv in v.items() if kk != "name"} for k, v in (options or {}).items()}
    generator_cls: Any = ImageGeneratorDeployment  # a serve.Deployment (mypy sees the class)
    ingress_cls: Any = IngressDeployment
    generator = generator_cls.options(**replica_options(generator_cls, opts.get(GENERATOR, {}))).bind(
        config.engine.to_dict())
    video = None
    if config.video is not None:  # the video generator (POST /v1/videos, GenerateVideo)
        from service.video_deployment import VIDEO_GENERATOR, VideoGeneratorDeployment

        video_cls: Any = VideoGeneratorDeployment
        video = video_cls.options(**replica_options(video_cls, opts.get(VIDEO_GENERATOR, {}))).bind(
            dataclasses.asdict(config.video))
    speech = None
    if config.speech is not None:  # the speech generator (POST /v1/speech, /v1/audio/speech, GenerateSpeech)
        from service.speech_deployment import SPEECH_GENERATOR, SpeechGeneratorDeployment

        speech_cls: Any = SpeechGeneratorDeployment
        speech = speech_cls.options(**replica_options(speech_cls, opts.get(SPEECH_GENERATOR, {}))).bind(
            dataclasses.asdict(config.speech))
    return ingress_cls.options(**opts.get(INGRESS, {})).bind(generator, config.to_dict(), video, speech)


def app_builder(args: dict[str, Any]) -> Any:
    """`import_path` target of deploy/serve.yaml (`serve run` / `serve deploy` call it with `args`)."""
    return build_app(AppConfig.from_dict(args or {}))
