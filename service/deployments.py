"""Ray Serve deployments: the image generator (batched) and the ingress (FastAPI + gRPC), and the app builder.

`app_builder` is the `import_path` of deploy/serve.yaml, so the same file drives `djepa serve` and
`serve run` / `serve deploy` on an existing cluster (where Ray applies the file's `deployments:`
options; `djepa serve` applies them with `.options`). No tensor maths here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle

from service.config import AppConfig, BatchConfig, EngineConfig
from service.engine import TorchImageEngine
from service.errors import NotReady, QueueFull
from service.ingress.grpc import GenerationServicer
from service.ingress.http import create_app
from service.metrics import ServiceMetrics
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.types import GeneratedImage, ImageItem, ModelInfo

GENERATOR = "ImageGenerator"
INGRESS = "Ingress"
DEFAULT_BATCH = BatchConfig()


@serve.deployment(name=GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_BATCH.max_batch_size, max_queued_requests=256,
                  user_config=dataclasses.asdict(DEFAULT_BATCH))
class ImageGeneratorDeployment:
    """One engine per replica; items arriving together run as one `@serve.batch` (list in, list out)."""

    def __init__(self, engine: Mapping[str, Any]) -> None:
        self.engine = TorchImageEngine.load(EngineConfig.from_dict(dict(engine)))
        self.batch = DEFAULT_BATCH

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Live batching changes (`user_config` of deploy/serve.yaml)."""
        self.batch = BatchConfig.from_dict(dict(user_config))
        self._run_batch.set_max_batch_size(self.batch.max_batch_size)  # type: ignore[attr-defined]
        self._run_batch.set_batch_wait_timeout_s(self.batch.batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def info(self) -> ModelInfo:
        return self.engine.info

    async def batch_config(self) -> BatchConfig:
        return self.batch

    async def generate(self, item: ImageItem) -> GeneratedImage:
        result: GeneratedImage = await self._run_batch((item, time.perf_counter()))
        return result

    @serve.batch(max_batch_size=DEFAULT_BATCH.max_batch_size, batch_wait_timeout_s=DEFAULT_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[tuple[ImageItem, float]]) -> list[GeneratedImage]:
        start = time.perf_counter()
        # the pass runs in a thread so this replica keeps accepting (queueing) items meanwhile
        results = await asyncio.to_thread(self.engine.generate, [item for item, _ in entries])
        return [GeneratedImage(out, dataclasses.replace(stats, queue_wait_s=max(0.0, start - arrived)))
                for (out, stats), (_, arrived) in zip(results, entries, strict=True)]


class HandleBackend:
    """`ImageBackend` over a deployment handle to the generator; Ray's errors become service errors."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        self.handle = handle
        self.retry_after_s = retry_after_s
        self._info: ModelInfo | None = None

    async def model_info(self, fresh: bool = False) -> ModelInfo:
        if self._info is None or fresh:
            try:
                self._info = await self.handle.info.remote()
            except BackPressureError:
                if self._info is None:  # busy, not broken: it answered nobody yet because it is full
                    raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
            except DeploymentUnavailableError:
                raise NotReady("the image generator is not available") from None
        assert self._info is not None
        return self._info

    async def generate(self, item: ImageItem) -> GeneratedImage:
        try:
            response = self.handle.generate.remote(item)
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        try:
            result: GeneratedImage = await response
        except BackPressureError:
            raise QueueFull("the image generator's queue is full", self.retry_after_s) from None
        except DeploymentUnavailableError:
            raise NotReady("the image generator is not available") from None
        except asyncio.CancelledError:
            response.cancel()  # type: ignore[no-untyped-call]  # deadline passed or the client left: stop the work
            raise
        return result


class StreamFailed(Exception):
    """Raised after a streaming RPC set an error code: Ray Serve keeps a code set on the context only
    when the method raises (a unary method returns an empty message instead)."""


@serve.deployment(name=INGRESS, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=512)
@serve.ingress()
class IngressDeployment:
    """Both doors into the generators: the FastAPI app (ingress/http.py) and the gRPC methods
    (ingress/grpc.py, through Ray Serve's gRPC proxy), over one handle backend and one metrics registry."""

    def __init__(self, generator: DeploymentHandle[Any], args: Mapping[str, Any]) -> None:
        self.config = AppConfig.from_dict(dict(args))
        self.backend = HandleBackend(generator, self.config.retry_after_s)
        self.metrics = ServiceMetrics()
        self.grpc = GenerationServicer(self.backend, self.config, self.metrics)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.backend, self.config, self.metrics)

    # djepa.v1.Generation (method names are the RPC names: Ray Serve's gRPC proxy calls them)

    async def GenerateImages(self, request: pb.GenerateImagesRequest,
                             grpc_context: RayServegRPCContext) -> pb.GenerateImagesResponse:
        return await self.grpc.generate_images(request, grpc_context)

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
    return ingress_cls.options(**opts.get(INGRESS, {})).bind(generator, config.to_dict())


def app_builder(args: dict[str, Any]) -> Any:
    """`import_path` target of deploy/serve.yaml (`serve run` / `serve deploy` call it with `args`)."""
    return build_app(AppConfig.from_dict(args or {}))
