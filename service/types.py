"""Domain types of the service: what the ingresses hand the generator and what comes back.

Plain frozen dataclasses (picklable across Ray processes); pydantic and protobuf stop at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Modality = Literal["image", "speech", "video"]


@dataclass(frozen=True)
class ImageRequest:
    """One API request, as parsed at the edge (not yet checked against the model)."""

    class_id: int | str
    n: int = 1
    seed: int | None = None
    cfg_scale: float | None = None
    temperature: float | None = None
    num_steps: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class ImageItem:
    """One image to generate: the unit of batching. Settings are resolved (no None)."""

    class_id: int
    seed: int
    num_steps: int
    cfg_scale: float
    temperature: float

    @property
    def settings_key(self) -> tuple[int, float, float]:
        """Items with equal keys can share one forward pass."""
        return (self.num_steps, self.cfg_scale, self.temperature)


@dataclass(frozen=True)
class ImageOutput:
    png: bytes
    class_id: int
    seed: int
    width: int
    height: int


@dataclass(frozen=True)
class BatchStats:
    """The forward pass an item was part of (recorded once per pass, by the holder of `first`)."""

    batch_id: str
    size: int  # images in the forward pass
    generation_s: float  # wall time of the pass
    queue_wait_s: float  # this item's wait from arrival at the generator to the start of its batch
    first: bool  # True for exactly one item of each pass


@dataclass(frozen=True)
class GeneratedImage:
    output: ImageOutput
    stats: BatchStats


@dataclass(frozen=True)
class ModelInfo:
    id: str
    modality: Modality
    classes: tuple[str, ...]  # class id i is named classes[i]
    width: int
    height: int
    channels: int
    defaults: dict[str, Any] = field(default_factory=dict)  # sampler defaults
    max_num_steps: int = 256

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "model",
            "modality": self.modality,
            "classes": [{"id": i, "name": name} for i, name in enumerate(self.classes)],
            "output": {"width": self.width, "height": self.height, "channels": self.channels, "format": "png"},
            "defaults": dict(self.defaults),
        }
