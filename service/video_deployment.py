"""The video generator deployment (Ray Serve, `@serve.batch`) and the ingress's handle backend to it.

The shared generator behaviour (one engine per replica, batch size and wait timeout from `user_config`,
deadlines carried with each item, a caller that leaves cancels its item, load failures kept as the not-ready
reason) is generator_deployment.py's; here: the video engine. No tensor maths here: the engine
(video_engine.py) generates and encodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from service.config import BatchConfig, VideoConfig
from service.generator_deployment import GeneratorHandle, GeneratorReplica, Pending, Refusal
from service.types import GeneratedVideo, VideoItem
from service.video_engine import TorchVideoEngine

VIDEO_GENERATOR = "VideoGenerator"
DEFAULT_VIDEO_BATCH = BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.05)


@serve.deployment(name=VIDEO_GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_VIDEO_BATCH.max_batch_size, max_queued_requests=64,
                  user_config=dataclasses.asdict(DEFAULT_VIDEO_BATCH))
class VideoGeneratorDeployment(GeneratorReplica):
    """One video engine per replica; clips arriving together run as one `@serve.batch`."""

    modality = "video"

    def __init__(self, video: Mapping[str, Any]) -> None:
        config = VideoConfig.from_dict(dict(video))
        super().__init__(lambda: TorchVideoEngine.load(config), DEFAULT_VIDEO_BATCH, config.engine.name)

    @serve.batch(max_batch_size=DEFAULT_VIDEO_BATCH.max_batch_size,
                 batch_wait_timeout_s=DEFAULT_VIDEO_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[Pending[VideoItem]]) -> list[GeneratedVideo | Refusal]:
        return await self._process_batch(entries, GeneratedVideo)


class VideoHandleBackend(GeneratorHandle[VideoItem, GeneratedVideo]):
    """`VideoBackend` (ingress/common.py) over a deployment handle."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        super().__init__(handle, retry_after_s, "the video generator")
