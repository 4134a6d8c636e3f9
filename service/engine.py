"""The image engine: a model bundle on one device, generating many requests' images per call.

No Ray, FastAPI or gRPC here (design.md): deployments wrap an `ImageEngine`, tests inject one.
`generate` runs one forward pass per group of items that share settings (see batching.py); every
image comes from its own seed (`PerSampleNoise`), so an image does not depend on its batch-mates.
The step API (`start`, `advance`, `outputs`, `preview`) serves continuous batching (scheduler.py):
one AR step at a time for images at any step and with any settings (djepa_core/samplers/stepwise.py).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from djepa_core.pipeline import ImageGenerator
from djepa_core.samplers import stepwise
from djepa_core.samplers.masked_ar import HeadSampler, SampleSettings
from djepa_core.tokenizers.image_vae import to_uint8
from service.batching import group_by_settings
from service.config import EngineConfig
from service.types import BatchStats, ImageItem, ImageOutput, ModelInfo

FALLBACK_PRESET = "djepa-s"


class ImageEngine(Protocol):
    """What the serving layers need from an engine."""

    @property
    def info(self) -> ModelInfo: ...

    def generate(self, items: Sequence[ImageItem]) -> list[tuple[ImageOutput, BatchStats]]:
        """One output per item, in order, with the forward pass it came from (queue_wait_s = 0)."""
        ...


def load_bundle(config: EngineConfig) -> tuple[ImageGenerator, str]:
    """The generator `config` names, on its device, and a description of where it came from."""
    from djepa_core.assets import default_image_checkpoint
    from djepa_core.checkpoint import load_generator
    from djepa_core.presets import get_preset

    device = torch.device(config.device)
    if config.checkpoint is not None:
        return load_generator(config.checkpoint, device=device), f"checkpoint {config.checkpoint}"
    if config.reference is not None:
        from djepa_core.compat.convert import import_reference

        assert config.vae is not None  # checked by EngineConfig
        gen = import_reference(config.reference, config.vae)
        return gen.to(device), f"reference {config.reference} + VAE {config.vae}"
    if config.preset is None:
        default = default_image_checkpoint()
        if default is not None:
            return load_generator(default, device=device), f"embedded default model {default.name}"
    preset = config.preset or FALLBACK_PRESET
    gen = ImageGenerator.from_config(get_preset(preset), seed=config.init_seed).to(device)
    return gen, f"preset {preset} (untrained, init seed {config.init_seed})"


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, C] (C = 1 or 3) -> PNG bytes."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class TorchImageEngine:
    """`ImageEngine` over a djepa `ImageGenerator`."""

    def __init__(self, generator: ImageGenerator, config: EngineConfig | None = None, source: str = "") -> None:
        self.config = config or EngineConfig()
        self.generator = generator
        self.source = source
        cfg = generator.config
        sampling = generator.settings(num_steps=self.config.num_steps, cfg_scale=self.config.cfg_scale,
                                      temperature=self.config.temperature, head_steps=self.config.head_steps)
        self._base_settings = sampling
        self._head_samplers: dict[tuple[object, ...], HeadSampler] = {}  # by stepwise.head_key, built once
        n = cfg.model.num_classes
        names = tuple(cfg.class_names) if len(cfg.class_names) == n else tuple(str(i) for i in range(n))
        size = cfg.tokenizer.image_size
        self._info = ModelInfo(
            id=self.config.name or cfg.name, modality="image", classes=names, width=size, height=size,
            channels=cfg.tokenizer.channels,
            defaults={"num_steps": sampling.num_steps, "cfg_scale": sampling.cfg_scale,
                      "temperature": sampling.temperature, "cfg_schedule": sampling.cfg_schedule,
                      "head_steps": sampling.head_steps or cfg.model.sampling_steps},
            max_num_steps=self.config.max_num_steps)

    @classmethod
    def load(cls, config: EngineConfig) -> TorchImageEngine:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        generator, source = load_bundle(config)
        return cls(generator.accelerate(config.fast_path()), config, source)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def item_settings(self, item: ImageItem) -> SampleSettings:
        return self.generator.settings(num_steps=item.num_steps, cfg_scale=item.cfg_scale,
                                       temperature=item.temperature, head_steps=self._base_settings.head_steps)

    # ---------------------------------------------------------------- step API (continuous batching)

    def start(self, item: ImageItem) -> stepwise.ARState:
        """The state of a new image (ValueError for a class outside the model's)."""
        if not 0 <= item.class_id < len(self._info.classes):
            raise ValueError(f"class id {item.class_id} is outside [0, {len(self._info.classes)})")
        return stepwise.start(self.generator.model, item.class_id, item.seed, self.item_settings(item))

    def advance(self, states: Sequence[stepwise.ARState]) -> list[stepwise.ARState]:
        """One AR step for all `states` together (one backbone forward, one head call)."""
        with self.generator.fast.autocast(self.generator.device):
            return stepwise.advance(self.generator.model, states, self._head_samplers)

    def is_done(self, state: stepwise.ARState) -> bool:
        return stepwise.finished(state)

    def step_of(self, state: stepwise.ARState) -> int:
        return state.step

    @torch.no_grad()
    def outputs(self, items: Sequence[ImageItem], states: Sequence[stepwise.ARState]) -> list[ImageOutput]:
        """The finished images of `states`, decoded together, as PNGs."""
        if not states:
            return []
        images = self.generator.tokenizer.decode(torch.stack([s.tokens for s in states]))
        pixels = to_uint8(images.cpu()).numpy()  # (B, H, W, C)
        h, w = int(pixels.shape[1]), int(pixels.shape[2])
        return [ImageOutput(encode_png(p), item.class_id, item.seed, w, h)
                for p, item in zip(pixels, items, strict=True)]

    @torch.no_grad()
    def preview(self, state: stepwise.ARState) -> bytes:
        """PNG of the image so far: the tokenizer's decode of the tokens generated (masked ones zero)."""
        images = self.generator.tokenizer.decode(stepwise.partial_tokens(state)[None])
        return encode_png(to_uint8(images.cpu()).numpy()[0])

    def generate(self, items: Sequence[ImageItem]) -> list[tuple[ImageOutput, BatchStats]]:
        if not items:
            return []
        out: list[tuple[ImageOutput, BatchStats] | None] = [None] * len(items)
        n = self._info.classes
        for group in group_by_settings(items):
            first = items[group[0]]
            bad = [items[i].class_id for i in group if not 0 <= items[i].class_id < len(n)]
            if bad:
                raise ValueError(f"class ids {bad} are outside [0, {len(n)})")
            settings = self.item_settings(first)
            t0 = time.perf_counter()
            images = self.generator.generate([items[i].class_id for i in group],
                                             seeds=[items[i].seed for i in group], settings=settings)
            pixels = to_uint8(images.cpu()).numpy()  # (B, H, W, C)
            pngs = [encode_png(p) for p in pixels]
            seconds = time.perf_counter() - t0
            batch_id = uuid.uuid4().hex[:12]
            for k, i in enumerate(group):
                item = items[i]
                h, w = int(pixels.shape[1]), int(pixels.shape[2])
                out[i] = (ImageOutput(pngs[k], item.class_id, item.seed, w, h),
                          BatchStats(batch_id, len(group), seconds, 0.0, k == 0))
        return [o for o in out if o is not None]
