"""What both ingresses do the same way: run a request's items on the backend under one deadline."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Protocol

from service.errors import DeadlineExceeded, InvalidRequest
from service.types import GeneratedImage, ImageItem, ModelInfo


class ImageBackend(Protocol):
    async def model_info(self) -> ModelInfo:
        """The served model (NotReady while no generator answers)."""
        ...

    async def generate(self, item: ImageItem) -> GeneratedImage:
        """One image (QueueFull when the generator's queue is full). Cancelling the awaiting task
        cancels the work."""
        ...


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
    tasks = [asyncio.ensure_future(backend.generate(item)) for item in items]
    try:
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"deadline of {timeout:g}s passed") from None
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
