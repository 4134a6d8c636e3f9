"""The speech generator deployment (Ray Serve, `@serve.batch`) and the ingress's handle backend to it.

The shared generator behaviour (batch queue, deadlines, cancels, load failures, refusals) is
generator_deployment.py's; here: the speech engine, and one check before an item queues, so that a text
the model cannot speak (nothing left after normalization, too many symbols, too long at its speed) is a
422 naming `text` with the model's message, and never fails its batch-mates. No tensor maths here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from service.config import BatchConfig, SpeechConfig
from service.errors import InvalidRequest, ServiceError
from service.generator_deployment import GeneratorHandle, GeneratorReplica, Pending, Refusal
from service.speech_engine import TorchSpeechEngine
from service.types import GeneratedSpeech, SpeechItem

SPEECH_GENERATOR = "SpeechGenerator"
DEFAULT_SPEECH_BATCH = BatchConfig(max_batch_size=8, batch_wait_timeout_s=0.05)


@serve.deployment(name=SPEECH_GENERATOR, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                  max_ongoing_requests=2 * DEFAULT_SPEECH_BATCH.max_batch_size, max_queued_requests=64,
                  user_config=dataclasses.asdict(DEFAULT_SPEECH_BATCH))
class SpeechGeneratorDeployment(GeneratorReplica):
    """One speech engine per replica; texts arriving together run as one `@serve.batch`."""

    modality = "speech"

    def __init__(self, speech: Mapping[str, Any]) -> None:
        config = SpeechConfig.from_dict(dict(speech))
        super().__init__(lambda: TorchSpeechEngine.load(config), DEFAULT_SPEECH_BATCH, config.engine.name)

    def refuse(self, item: SpeechItem) -> ServiceError | None:
        engine: Any = self.engine
        reason: str | None = engine.refusal(item)
        return InvalidRequest(reason, "text") if reason is not None else None

    @serve.batch(max_batch_size=DEFAULT_SPEECH_BATCH.max_batch_size,
                 batch_wait_timeout_s=DEFAULT_SPEECH_BATCH.batch_wait_timeout_s)
    async def _run_batch(self, entries: list[Pending[SpeechItem]]) -> list[GeneratedSpeech | Refusal]:
        return await self._process_batch(entries, GeneratedSpeech)


class SpeechHandleBackend(GeneratorHandle[SpeechItem, GeneratedSpeech]):
    """`SpeechBackend` (ingress/common.py) over a deployment handle."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int) -> None:
        super().__init__(handle, retry_after_s, "the speech generator")
