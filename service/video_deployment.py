"""The video generator deployment (Ray Serve, `@serve.batch`) and the ingress's handle backend to it.

As the image generator in deployments.py: one engine per replica, items arriving together run as one
batch (list in, list out; size and wait timeout from `user_config`, changeable live), deadlines
carried with each item (dropped unstarted once passed), a caller that leaves cancels its item. No
tensor maths here: the engine (video_engine.py) generates and encodes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from service.config import BatchConfig, VideoConfig
from service.errors import DeadlineExceeded, NotReady, QueueFull, redact_paths
from service.types import GeneratedVideo, ModelInfo, VideoItem
from service.video_engine import TorchVideoEngine

VIDEO_GENERATOR = "VideoGenerator"
DEFAULT_VIDEO_BATCH = BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.05)
log = logging.getLogger("djepa.service")


@dataclasses.dataclass
class _Pending:
    item: VideoItem
    arrived: float  # perf_counter at arrival
    deadline: float | None  # unix time
    started: bool = False


@serve.deployment(name=VIDEO_GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_VIDEO_BATCH.max_batch_size, max_queued_requests=64,
                  user_config=dataclasses.asdict(DEFAULT_VIDEO_BATCH))
class VideoGeneratorDeployment:
    """One video engine per replica; clips arriving together run as one `@serve.batch`."""

    def __init__(self, video: Mapping[str, Any]) -> None:
        config = VideoConfig.from_dict(dict(video))
        self.batch = DEFAULT_VIDEO_BATCH
        self.skipped: collections.Counter[str] = collections.Counter()
        self._engine: TorchVideoEngine | None = None
        self.load_error: str | None = None
        try:
            self._engine = TorchVideoEngine.load(config)
        except Exception as e:  # stay up, not ready, with the reason (paths removed)
            log.exception("the video model failed to load")
            first = (str(e).strip().splitlines() or [""])[0]
            self.load_error = redact_paths(f"the video model failed to load: {type(e).__name__}: {first}")

    @property
    def engine(self) -> TorchVideoEngine:
        if self._engine is None:
            raise NotReady(self.load_error or "the video model is not loaded")
        return self._engine

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        self.batch = BatchConfig.from_dict(dict(user_config))
        self._run_batch.set_max_batch_size(self.batch.max_batch_size)  # type: ignore[attr-defined]
        self._run_batch.set_batch_wait_timeout_s(self.batch.batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def info(self) -> ModelInfo:
        return self.engine.info

    async def batch_config(self) -> BatchConfig:
        return self.batch

    async def generate(self, item: VideoItem, deadline: float | None = None) -> GeneratedVideo:
        if self._engine is None:
            raise NotReady(self.load_error or "the video model is not loaded")
        if deadline is not None and time.time() >= deadline:
            self.skipped["deadline"] += 1
            raise DeadlineExceeded("the request's deadline passed before its batch started")
        pending = _Pending(item, time.perf_counter(), deadline)
        try:
            result: GeneratedVideo | None = await self._run_batch(pending)
        except asyncio.CancelledError:
            if not pending.started:
                self.skipped["cancelled"] += 1
            raise
        if result is None:
            raise DeadlineExceeded("the request's deadline passed before its batch started")
        return result

    @serve.batch(max_batch_size=DEFAULT_VIDEO_BATCH.max_batch_size,
                 batch_wait_timeout_s=DEFAULT_VIDEO_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[_Pending]) -> list[GeneratedVideo | None]:
        start, now = time.perf_counter(), time.time()
        live = [e for e in entries if e.deadline is None or now < e.deadline]
        self.skipped["deadline"] += len(entries) - len(live)
        for e in live:
            e.started = True
        results = await asyncio.to_thread(self.engine.generate, [e.item for e in live]) if live else []
        done = {id(e): GeneratedVideo(out, dataclasses.replace(stats, queue_wait_s=max(0.0, start - e.arrived)))
                for (out, stats), e in zip(results, live, strict=True)}
        return [done.get(id(e)) for e in entries]


class VideoHandleBackend:
    """`VideoBackend` (ingress/common.py) over a deployment handle; Ray's errors become service errors."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        self.handle = handle
        self.retry_after_s = retry_after_s
        self._info: ModelInfo | None = None

    async def model_info(self, fresh: bool = False) -> ModelInfo:
        if self._info is None or fresh:
            try:
                self._info = await self.handle.info.remote()
            except BackPressureError:
                if self._info is None:
                    raise QueueFull("the video generator's queue is full", self.retry_after_s) from None
            except DeploymentUnavailableError:
                raise NotReady("the video generator is not available") from None
        assert self._info is not None
        return self._info

    async def check_ready(self) -> ModelInfo:
        return await self.model_info(fresh=True)

    async def generate(self, item: VideoItem, deadline: float | None = None) -> GeneratedVideo:
        try:
            response = self.handle.generate.remote(item, deadline)
        except BackPressureError:
            raise QueueFull("the video generator's queue is full", self.retry_after_s) from None
        try:
            result: GeneratedVideo = await response
        except BackPressureError:
            raise QueueFull("the video generator's queue is full", self.retry_after_s) from None
        except DeploymentUnavailableError:
            raise NotReady("the video generator is not available") from None
        except asyncio.CancelledError:
            response.cancel()  # type: ignore[no-untyped-call]
            raise
        return result
