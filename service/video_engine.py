"""The video engine: a video model bundle on one device, generating many requests' clips per call.

No Ray, FastAPI or gRPC here (design.md), as engine.py for images: the video deployment wraps a
`TorchVideoEngine`. `generate` runs one forward pass per group of items that share settings; every
clip comes from its own seed (`PerSampleNoise`), so a clip does not depend on its batch-mates. Each
item is cut to its `num_frames` and encoded to its format (GIF, WebP or `.npz`) here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from djepa_core.video_pipeline import VideoGenerator
from djepa_core.videos import MEDIA_TYPES, clip_to_uint8, encode_video
from service.batching import VIDEO_FORMATS, run_in_groups
from service.config import EngineConfig, VideoConfig
from service.types import BatchStats, ModelInfo, VideoItem, VideoOutput

FALLBACK_VIDEO_PRESET = "djepa-video-tiny"


def load_video_bundle(config: EngineConfig) -> tuple[VideoGenerator, str]:
    """The video generator `config` names, on its device, and a description of where it came from."""
    from djepa_core.assets import default_video_checkpoint
    from djepa_core.checkpoint import load_video_generator
    from djepa_core.presets import get_preset

    device = torch.device(config.device)
    if config.reference is not None:
        raise ValueError("video: reference checkpoints are image models; give a djepa video checkpoint or a preset")
    if config.checkpoint is not None:
        return load_video_generator(config.checkpoint, device=device), f"checkpoint {config.checkpoint}"
    if config.preset is None:
        default = default_video_checkpoint()
        if default is not None:
            return load_video_generator(default, device=device), f"embedded default video model {default.name}"
    preset = config.preset or FALLBACK_VIDEO_PRESET
    gen = VideoGenerator.from_config(get_preset(preset), seed=config.init_seed).to(device)
    return gen, f"preset {preset} (untrained, init seed {config.init_seed})"


class TorchVideoEngine:
    """Video generation over a djepa `VideoGenerator`: items in, encoded clips out."""

    def __init__(self, generator: VideoGenerator, config: VideoConfig | None = None, source: str = "") -> None:
        self.config = config or VideoConfig()
        engine = self.config.engine
        self.generator = generator
        self.source = source
        cfg = generator.config
        sampling = generator.settings(num_steps=engine.num_steps, cfg_scale=engine.cfg_scale,
                                      temperature=engine.temperature, head_steps=engine.head_steps)
        self._base_settings = sampling
        n = cfg.model.num_classes
        names = tuple(cfg.class_names) if len(cfg.class_names) == n else tuple(str(i) for i in range(n))
        size = cfg.tokenizer.image_size * self.config.upscale  # GIF/WebP frames (npz: native size)
        defaults: dict[str, Any] = {"num_steps": sampling.num_steps, "cfg_scale": sampling.cfg_scale,
                                    "temperature": sampling.temperature, "cfg_schedule": sampling.cfg_schedule,
                                    "head_steps": sampling.head_steps or cfg.model.sampling_steps,
                                    "order": sampling.order, "num_frames": generator.num_frames,
                                    "response_format": VIDEO_FORMATS[0]}
        self._info = ModelInfo(
            id=engine.name or cfg.name, modality="video", classes=names, width=size, height=size,
            channels=cfg.tokenizer.channels, defaults=defaults, max_num_steps=engine.max_num_steps,
            num_frames=generator.num_frames, fps=self.config.fps, formats=VIDEO_FORMATS)

    @classmethod
    def load(cls, config: VideoConfig) -> TorchVideoEngine:
        if config.engine.threads is not None:
            torch.set_num_threads(config.engine.threads)
        generator, source = load_video_bundle(config.engine)
        return cls(generator, config, source)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def encode(self, clip: torch.Tensor, item: VideoItem) -> VideoOutput:
        """One generated clip [T, C, S, S] -> the item's media (first `num_frames` frames)."""
        frames = clip_to_uint8(clip[: item.num_frames])  # (T, S, S, C)
        fmt = item.response_format
        upscale = 1 if fmt == "npz" else self.config.upscale
        data = encode_video(frames, fmt, self.config.fps, upscale,  # type: ignore[arg-type]
                            extra={"class_id": item.class_id, "seed": item.seed})
        h, w = frames.shape[1] * upscale, frames.shape[2] * upscale
        return VideoOutput(data, MEDIA_TYPES[fmt], item.class_id, item.seed, item.num_frames, w, h)

    def generate(self, items: Sequence[VideoItem]) -> list[tuple[VideoOutput, BatchStats]]:
        """One output per item, in order, with the forward pass it came from (queue_wait_s = 0)."""
        n = len(self._info.classes)
        bad = [item.class_id for item in items if not 0 <= item.class_id < n]
        if bad:
            raise ValueError(f"class ids {bad} are outside [0, {n})")

        def clips_of(group: list[int]) -> list[VideoOutput]:
            first = items[group[0]]
            settings = self.generator.settings(num_steps=first.num_steps, cfg_scale=first.cfg_scale,
                                               temperature=first.temperature, order=first.order,
                                               head_steps=self._base_settings.head_steps)
            clips = self.generator.generate([items[i].class_id for i in group],
                                            seeds=[items[i].seed for i in group], settings=settings).cpu()
            return [self.encode(clips[k], items[i]) for k, i in enumerate(group)]

        return run_in_groups(items, clips_of)
