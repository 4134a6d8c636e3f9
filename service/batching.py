"""Batching, explicit and in one place.

- `expand`: one API request -> its images (`n` items, seeds `seed, seed+1, ...`), checked against the
  model. Items, not requests, are what `@serve.batch` groups, so an n=4 request and four n=1
  requests batch the same way.
- `group_by_settings`: a batch -> groups that can share one forward pass (equal steps, guidance and
  temperature); the engine runs one pass per group.
- The `@serve.batch` queue itself (size and wait timeout from `BatchConfig`) is in deployments.py.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from service.errors import InvalidRequest
from service.types import (
    BatchStats,
    ImageItem,
    ImageRequest,
    ModelInfo,
    SpeechItem,
    SpeechRequest,
    VideoItem,
    VideoRequest,
)

Out = TypeVar("Out")

MAX_SEED = 2**63 - 1
MAX_CFG_SCALE = 100.0
MAX_TEMPERATURE = 10.0
MAX_NAME_CHARS = 256  # longest class name or model id a request may give (longer is a 422, never echoed)


def _check_name(value: str, field: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        raise InvalidRequest(f"{field} is longer than {MAX_NAME_CHARS} characters", field)


def resolve_class(class_id: int | str, info: ModelInfo) -> int:
    """A class id or a class name -> the class id (InvalidRequest naming `class_id` otherwise)."""
    if isinstance(class_id, bool):
        raise InvalidRequest("class_id must be an integer or a class name", "class_id")
    if isinstance(class_id, int):
        if not 0 <= class_id < len(info.classes):
            raise InvalidRequest(f"class_id {class_id} is outside [0, {len(info.classes)}) for model {info.id}",
                                 "class_id")
        return class_id
    _check_name(class_id, "class_id")
    if class_id in info.classes:
        return info.classes.index(class_id)
    shown = ", ".join(repr(c) for c in info.classes[:12]) + (", ..." if len(info.classes) > 12 else "")
    raise InvalidRequest(f"unknown class {class_id!r} for model {info.id}; classes are {shown}", "class_id")


def expand(request: ImageRequest, info: ModelInfo, max_images: int) -> list[ImageItem]:
    """The items of `request`, validated (every error names its field)."""
    if request.model is not None:
        _check_name(request.model, "model")
    if request.model is not None and request.model != info.id:
        raise InvalidRequest(f"unknown model {request.model!r}; this service has {info.id!r}", "model")
    if not 1 <= request.n <= max_images:
        raise InvalidRequest(f"n must be in [1, {max_images}], got {request.n}", "n")
    class_id = resolve_class(request.class_id, info)
    d = info.defaults
    num_steps = int(request.num_steps if request.num_steps is not None else d["num_steps"])
    cfg_scale = float(request.cfg_scale if request.cfg_scale is not None else d["cfg_scale"])
    temperature = float(request.temperature if request.temperature is not None else d["temperature"])
    if not 1 <= num_steps <= info.max_num_steps:
        raise InvalidRequest(f"num_steps must be in [1, {info.max_num_steps}], got {num_steps}", "num_steps")
    if not (math.isfinite(cfg_scale) and 0 <= cfg_scale <= MAX_CFG_SCALE):
        raise InvalidRequest(f"cfg_scale must be in [0, {MAX_CFG_SCALE}], got {cfg_scale}", "cfg_scale")
    if not (math.isfinite(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise InvalidRequest(f"temperature must be in (0, {MAX_TEMPERATURE}], got {temperature}", "temperature")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed <= MAX_SEED - request.n:
        raise InvalidRequest(f"seed must be in [0, {MAX_SEED - request.n}], got {seed}", "seed")
    return [ImageItem(class_id, seed + i, num_steps, cfg_scale, temperature) for i in range(request.n)]


def group_by_settings(items: Sequence[ImageItem | VideoItem | SpeechItem]) -> list[list[int]]:
    """Indices of `items` grouped by settings (first-seen order), one group per forward pass."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, item in enumerate(items):
        key: tuple[object, ...] = item.settings_key
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def run_in_groups(items: Sequence[ImageItem | VideoItem | SpeechItem],
                  run: Callable[[list[int]], list[Out]]) -> list[tuple[Out, BatchStats]]:
    """One output per item, in order, each with the forward pass it came from (queue_wait_s = 0): `run(group)`
    makes the outputs of one group of `group_by_settings` (indices into `items`, one output per index), timed
    as one pass. The engines' shared loop."""
    out: list[tuple[Out, BatchStats] | None] = [None] * len(items)
    for group in group_by_settings(items):
        t0 = time.perf_counter()
        outputs = run(group)
        seconds = time.perf_counter() - t0
        batch_id = uuid.uuid4().hex[:12]
        for k, (i, output) in enumerate(zip(group, outputs, strict=True)):
            out[i] = (output, BatchStats(batch_id, len(group), seconds, 0.0, k == 0))
    return [o for o in out if o is not None]


VIDEO_FORMATS = ("gif", "webp", "npz")
VIDEO_ORDERS = ("random", "frames")


def expand_video(request: VideoRequest, info: ModelInfo) -> VideoItem:
    """The one clip of a video request, validated against the video model (every error names its field)."""
    if request.model is not None:
        _check_name(request.model, "model")
    if request.model is not None and request.model != info.id:
        raise InvalidRequest(f"unknown model {request.model!r}; this service's video model is {info.id!r}", "model")
    if request.response_format not in VIDEO_FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(VIDEO_FORMATS)}, got "
                             f"{str(request.response_format)[:32]!r}", "response_format")
    class_id = resolve_class(request.class_id, info)
    d = info.defaults
    num_frames = int(request.num_frames if request.num_frames is not None else info.num_frames)
    if not 1 <= num_frames <= info.num_frames:
        raise InvalidRequest(f"num_frames must be in [1, {info.num_frames}], got {num_frames}", "num_frames")
    num_steps = int(request.num_steps if request.num_steps is not None else d["num_steps"])
    cfg_scale = float(request.cfg_scale if request.cfg_scale is not None else d["cfg_scale"])
    temperature = float(request.temperature if request.temperature is not None else d["temperature"])
    order = request.order if request.order is not None else str(d.get("order", "random"))
    if not 1 <= num_steps <= info.max_num_steps:
        raise InvalidRequest(f"num_steps must be in [1, {info.max_num_steps}], got {num_steps}", "num_steps")
    if not (math.isfinite(cfg_scale) and 0 <= cfg_scale <= MAX_CFG_SCALE):
        raise InvalidRequest(f"cfg_scale must be in [0, {MAX_CFG_SCALE}], got {cfg_scale}", "cfg_scale")
    if not (math.isfinite(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise InvalidRequest(f"temperature must be in (0, {MAX_TEMPERATURE}], got {temperature}", "temperature")
    if order not in VIDEO_ORDERS:
        raise InvalidRequest(f"order must be one of {', '.join(VIDEO_ORDERS)}, got {str(order)[:32]!r}", "order")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"seed must be in [0, {MAX_SEED}], got {seed}", "seed")
    return VideoItem(class_id, seed, num_frames, num_steps, cfg_scale, temperature, order, request.response_format)


SPEECH_FORMATS = ("wav", "flac", "pcm")
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def expand_speech(request: SpeechRequest, info: ModelInfo) -> SpeechItem:
    """The one utterance of a speech request, checked against the speech model's card (every error names
    its field). What only the model can judge (a text with nothing to say, or too long for it) the speech
    generator checks before queueing the item."""
    if request.model is not None:
        _check_name(request.model, "model")
    if request.model is not None and request.model != info.id:
        raise InvalidRequest(f"unknown model {request.model!r}; this service's speech model is {info.id!r}", "model")
    if request.voice is not None:
        _check_name(request.voice, "voice")
        if request.voice not in info.voices:
            raise InvalidRequest(f"unknown voice {request.voice!r}; voices are {', '.join(info.voices)}", "voice")
    if request.response_format not in SPEECH_FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(SPEECH_FORMATS)}, got "
                             f"{str(request.response_format)[:32]!r}", "response_format")
    if not 1 <= len(request.text) <= info.max_text_chars:
        raise InvalidRequest(f"text must be 1 to {info.max_text_chars} characters, got {len(request.text)}", "text")
    speed = float(request.speed if request.speed is not None else 1.0)
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidRequest(f"speed must be in [{MIN_SPEED}, {MAX_SPEED}], got {speed}", "speed")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"seed must be in [0, {MAX_SEED}], got {seed}", "seed")
    return SpeechItem(request.text, seed, speed, request.response_format)
