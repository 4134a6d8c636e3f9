"""What both ingresses do the same way: run a request's items on the backend under one deadline."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from service.errors import DeadlineExceeded, InvalidRequest, NotDeployed, new_request_id
from service.metrics import ServiceMetrics
from service.types import (
    BatchStats,
    GeneratedImage,
    GeneratedSpeech,
    GeneratedVideo,
    ImageItem,
    ModelInfo,
    SpeechItem,
    VideoItem,
)

T = TypeVar("T")


class ImageBackend(Protocol):
    async def model_info(self) -> ModelInfo:
        """The served model (NotReady while no generator answers)."""
        ...

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        """One image (QueueFull when the generator's queue is full). `deadline` (unix time): the
        generator drops the item, unstarted, once it has passed. Cancelling the awaiting task
        cancels the work."""
        ...


class VideoBackend(Protocol):
    async def model_info(self) -> ModelInfo:
        """The served video model (NotReady while no video generator answers)."""
        ...

    async def generate(self, item: VideoItem, deadline: float | None = None) -> GeneratedVideo:
        """One clip, as ImageBackend.generate."""
        ...


class SpeechBackend(Protocol):
    async def model_info(self) -> ModelInfo:
        """The served speech model (NotReady while no speech generator answers)."""
        ...

    async def generate(self, item: SpeechItem, deadline: float | None = None) -> GeneratedSpeech:
        """One utterance, as ImageBackend.generate."""
        ...


async def within(timeout: float, work: Callable[[float], Awaitable[T]]) -> T:
    """`work(deadline)` (deadline: unix time) under a deadline: DeadlineExceeded after `timeout` seconds, and
    the work is cancelled then."""
    try:
        return await asyncio.wait_for(work(time.time() + timeout), timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"deadline of {timeout:g}s passed") from None


async def generate_video(backend: VideoBackend, item: VideoItem, timeout: float) -> GeneratedVideo:
    """One clip under a deadline (DeadlineExceeded after `timeout` seconds; the work is cancelled then)."""
    return await within(timeout, lambda deadline: backend.generate(item, deadline))


async def generate_speech(backend: SpeechBackend, item: SpeechItem, timeout: float) -> GeneratedSpeech:
    """One utterance under a deadline, as generate_video."""
    return await within(timeout, lambda deadline: backend.generate(item, deadline))


class ModelBackend(Protocol):
    async def model_info(self) -> ModelInfo: ...


class Generated(Protocol):
    @property
    def stats(self) -> BatchStats: ...


BackendT = TypeVar("BackendT", bound=ModelBackend)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT", bound=Generated)


async def generate_one(backend: BackendT | None, modality: str, expand: Callable[[ModelInfo], ItemT],
                       generate: Callable[[BackendT, ItemT, float], Awaitable[ResultT]], timeout: Callable[[], float],
                       metrics: ServiceMetrics, seen: Callable[[ModelInfo], None] | None = None,
                       ) -> tuple[ModelInfo, ResultT]:
    """One media output, as both ingresses make it (POST /v1/videos and /v1/speech, GenerateVideo and
    GenerateSpeech): NotDeployed when `backend` is None; the model's card (told to `seen`); `expand(info)`, the
    item checked against it; `generate(backend, item, timeout())` counted in flight; its outputs recorded."""
    if backend is None:
        raise NotDeployed(f"no {modality} model is deployed")
    info = await backend.model_info()
    if seen is not None:
        seen(info)
    item = expand(info)
    seconds = timeout()
    with metrics.in_flight_request(info.id):
        result = await generate(backend, item, seconds)
    metrics.observe_outputs(info.id, info.modality, [result.stats])
    return info, result


async def ready_info(backend: ImageBackend | VideoBackend | SpeechBackend) -> ModelInfo:
    """The model info asked afresh, for readiness (a backend may cache `model_info` for requests;
    one with `check_ready` asks its generator now, so a dead or failed generator shows)."""
    check = getattr(backend, "check_ready", None)
    info: ModelInfo = await (check() if check is not None else backend.model_info())
    return info


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def clean_request_id(given: str | None) -> str:
    """The client's request id when it is short and plain, else a new one (never echo arbitrary text)."""
    return given if given is not None and _REQUEST_ID.fullmatch(given) else new_request_id()


def parse_timeout(raw: str, field: str, ceiling: float) -> float:
    """A per-request timeout in seconds (a header or metadata value), capped at `ceiling`."""
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{field} must be a number of seconds, got {raw!r}", field) from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidRequest(f"{field} must be > 0, got {raw!r}", field)
    return min(value, ceiling)


async def generate_all(backend: ImageBackend, items: Sequence[ImageItem], timeout: float) -> list[GeneratedImage]:
    """Every item, concurrently (the generator batches them with everyone else's); DeadlineExceeded
    after `timeout` seconds. On a deadline, an error or a cancellation, unfinished items are
    cancelled, which cancels their work on the generator."""
    deadline = time.time() + timeout  # carried with each item: the generator skips it once passed
    tasks = [asyncio.ensure_future(backend.generate(item, deadline)) for item in items]
    try:
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"deadline of {timeout:g}s passed") from None
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
