"""Progressive previews, the same for both ingresses: a request's images as a stream of previews and
one final answer (REST: Server-Sent Events; gRPC: GenerateImagesStream).

`stream_images` runs every item of a request as a stream on the backend (the generator's step
scheduler), merges their previews as they come, tagged with the item's index, and ends with all the
images, under one deadline. Leaving the iteration early (the client went away) cancels every item's
work on the generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.errors import DeadlineExceeded, InvalidRequest
from service.types import GeneratedImage, ImageItem, ImagePreview

PREVIEWS_PER_IMAGE = 8  # the default preview_every gives about this many previews per image
MAX_PREVIEW_EVERY = 1024


class ImageStreamBackend(Protocol):
    def generate_stream(self, item: ImageItem, deadline: float | None = None,
                        preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage]:
        """Previews of `item` every `preview_every` AR steps, then its image (service errors raised)."""
        ...


@dataclass(frozen=True)
class IndexedPreview:
    index: int  # which image of the request (seed + index)
    preview: ImagePreview


def preview_every_for(requested: int | None, num_steps: int) -> int:
    """The preview period in AR steps: the request's, else about PREVIEWS_PER_IMAGE previews per image."""
    if requested is None:
        return max(1, math.ceil(num_steps / PREVIEWS_PER_IMAGE))
    if not 1 <= requested <= MAX_PREVIEW_EVERY:
        raise InvalidRequest(f"preview_every must be in [1, {MAX_PREVIEW_EVERY}], got {requested}", "preview_every")
    return requested


async def stream_images(backend: ImageStreamBackend, items: Sequence[ImageItem], timeout: float,
                        preview_every: int) -> AsyncGenerator[IndexedPreview | list[GeneratedImage], None]:
    """Previews of every item as they come, then the list of images (in item order), as the last event.
    Raises the first item's error, or DeadlineExceeded after `timeout` seconds."""
    deadline = time.time() + timeout
    events: asyncio.Queue[tuple[int, ImagePreview | GeneratedImage | BaseException]] = asyncio.Queue()

    async def pump(index: int, item: ImageItem) -> None:
        stream = backend.generate_stream(item, deadline, preview_every)
        try:
            async for event in stream:
                events.put_nowait((index, event))
        except Exception as e:
            events.put_nowait((index, e))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    tasks = [asyncio.ensure_future(pump(i, item)) for i, item in enumerate(items)]
    finals: dict[int, GeneratedImage] = {}
    try:
        while len(finals) < len(items):
            remaining = deadline - time.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                index, event = await asyncio.wait_for(events.get(), remaining)
            except TimeoutError:
                raise DeadlineExceeded(f"deadline of {timeout:g}s passed") from None
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, GeneratedImage):
                finals[index] = event
            else:
                yield IndexedPreview(index, event)
        yield [finals[i] for i in range(len(items))]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()


def sse(event: str, data: object) -> bytes:
    """One Server-Sent Event: `event: <name>` and one `data:` line of JSON, then a blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
