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
class ImagePreview:
    """The image so far (streams, `"stream": true`): a cheap decode of the tokens generated after `step` of
    `num_steps` AR steps (the tokens still masked decode as zeros)."""

    step: int
    num_steps: int
    png: bytes


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
    num_frames: int = 0  # video: frames of a clip (the most a request may ask for)
    fps: float = 0.0  # video: frames per second of GIF/WebP answers
    formats: tuple[str, ...] = ("png",)  # answer formats, the default first
    sample_rate: int = 0  # speech: samples per second of the audio
    max_text_chars: int = 0  # speech: the longest text a request may give
    voices: tuple[str, ...] = ()  # speech: voice names a request may give (OpenAI's `voice`), the default first

    def to_json(self) -> dict[str, Any]:
        output: dict[str, Any] = {"width": self.width, "height": self.height, "channels": self.channels,
                                  "format": self.formats[0]}
        if self.modality == "video":
            output.update({"num_frames": self.num_frames, "fps": self.fps, "formats": list(self.formats)})
        if self.modality == "speech":
            output.update({"sample_rate": self.sample_rate, "max_text_chars": self.max_text_chars,
                           "formats": list(self.formats), "voices": list(self.voices)})
        return {
            "id": self.id,
            "object": "model",
            "modality": self.modality,
            "classes": [{"id": i, "name": name} for i, name in enumerate(self.classes)],
            "output": output,
            "defaults": dict(self.defaults),
        }


@dataclass(frozen=True)
class VideoRequest:
    """One POST /v1/videos (or GenerateVideo) request, as parsed at the edge (not yet checked)."""

    class_id: int | str
    seed: int | None = None
    num_frames: int | None = None
    cfg_scale: float | None = None
    temperature: float | None = None
    num_steps: int | None = None
    order: str | None = None  # "random" (all space-time tokens) or "frames" (frame by frame)
    model: str | None = None
    response_format: str = "gif"


@dataclass(frozen=True)
class VideoItem:
    """One clip to generate, settings resolved: the unit of the video generator's batching."""

    class_id: int
    seed: int
    num_frames: int
    num_steps: int
    cfg_scale: float
    temperature: float
    order: str
    response_format: str

    @property
    def settings_key(self) -> tuple[int, float, float, str]:
        """Items with equal keys share one forward pass (frames and format are cut and encoded per item)."""
        return (self.num_steps, self.cfg_scale, self.temperature, self.order)


@dataclass(frozen=True)
class VideoOutput:
    data: bytes  # the media file
    media_type: str  # e.g. "image/gif"
    class_id: int
    seed: int
    num_frames: int
    width: int
    height: int


@dataclass(frozen=True)
class GeneratedVideo:
    output: VideoOutput
    stats: BatchStats


@dataclass(frozen=True)
class SpeechRequest:
    """One POST /v1/speech (or /v1/audio/speech, or GenerateSpeech) request, as parsed at the edge."""

    text: str
    seed: int | None = None
    speed: float | None = None
    model: str | None = None
    voice: str | None = None  # OpenAI's `voice`: the default voice's name, or absent
    response_format: str = "wav"


@dataclass(frozen=True)
class SpeechItem:
    """One text to speak, settings resolved: the unit of the speech generator's batching."""

    text: str
    seed: int
    speed: float
    response_format: str

    @property
    def settings_key(self) -> tuple[float]:
        """Items with equal keys share one forward pass: the length model takes one speed per pass (texts of
        different lengths share it: the sampler pads each row to its own length, see samplers/speech.py)."""
        return (self.speed,)


@dataclass(frozen=True)
class SpeechOutput:
    data: bytes  # the audio file (WAV, FLAC) or raw 16-bit little-endian mono samples (PCM)
    media_type: str  # e.g. "audio/wav"
    seed: int
    sample_rate: int
    samples: int  # audio samples (duration = samples / sample_rate)


@dataclass(frozen=True)
class GeneratedSpeech:
    output: SpeechOutput
    stats: BatchStats
