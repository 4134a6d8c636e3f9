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
from collections.abc import Sequence

from service.errors import InvalidRequest
from service.types import ImageItem, ImageRequest, ModelInfo, VideoItem, VideoRequest

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


def group_by_settings(items: Sequence[ImageItem | VideoItem]) -> list[list[int]]:
    """Indices of `items` grouped by settings (first-seen order), one group per forward pass."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, item in enumerate(items):
        key: tuple[object, ...] = item.settings_key
        groups.setdefault(key, []).append(i)
    return list(groups.values())


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
