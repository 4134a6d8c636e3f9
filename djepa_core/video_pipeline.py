"""The class-conditional video generator: D-JEPA network + video tokenizer + sampling defaults.

The same backbone, heads and masked-AR sampler as :class:`~djepa_core.pipeline.ImageGenerator`, over
the T*H*W tokens of a clip. `generate` is the one call the CLI and the service use: class ids in,
clips [B, T, C, S, S] in [-1, 1] out. Generation order: `random` over all space-time tokens (the
default) or `frames` (frame by frame), chosen per call through the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from djepa_core.config import GeneratorConfig
from djepa_core.models.djepa import DJEPA
from djepa_core.pipeline import class_labels_and_noise
from djepa_core.samplers.masked_ar import SampleSettings, sample_tokens, settings_from_config
from djepa_core.samplers.noise import NoiseSource
from djepa_core.tokenizers.factory import build_video_tokenizer
from djepa_core.tokenizers.video import VideoPatchTokenizer


class VideoGenerator:
    def __init__(self, config: GeneratorConfig, model: DJEPA, tokenizer: VideoPatchTokenizer) -> None:
        if tuple(tokenizer.grid) != tuple(config.model.grid) or tokenizer.token_dim != config.model.token_dim:
            raise ValueError(f"tokenizer grid {tokenizer.grid} x {tokenizer.token_dim} does not match the model's "
                             f"{config.model.grid} x {config.model.token_dim}")
        self.config = config
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_config(cls, config: GeneratorConfig, seed: int = 0) -> VideoGenerator:
        """An untrained generator (random init from `seed`), for tests and smoke runs."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DJEPA(config.model)
        return cls(config, model, build_video_tokenizer(config.tokenizer))

    @property
    def device(self) -> torch.device:
        return self.model.fake_latent.device

    @property
    def num_frames(self) -> int:
        """Frames of one generated clip (the most `generate` gives)."""
        return self.tokenizer.num_frames

    def to(self, device: torch.device | str) -> VideoGenerator:
        self.model.to(device)
        self.tokenizer.to(device)
        return self

    def settings(self, **overrides: Any) -> SampleSettings:
        """The config's sampling defaults with `overrides` (None values ignored), e.g. order="frames"."""
        return settings_from_config(self.config.sampling, **overrides)

    @torch.no_grad()
    def generate(self, labels: Sequence[int] | torch.Tensor, *, seeds: Sequence[int] | None = None,
                 seed: int | None = None, settings: SampleSettings | None = None,
                 noise: NoiseSource | None = None, num_frames: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Clips [B, T, C, S, S] in [-1, 1] (not clamped) for class ids `labels`.

        `num_frames` (1..T, default T) keeps the first frames of each generated clip. Randomness:
        `seeds` (one per clip: each clip depends only on its own seed), else `seed`, else `noise`.
        """
        labels_t, noise = class_labels_and_noise(labels, self.config.model.num_classes, self.device, seeds, seed,
                                                 noise, "clips")
        frames = self.num_frames if num_frames is None else int(num_frames)
        if not 1 <= frames <= self.num_frames:
            raise ValueError(f"num_frames must be in [1, {self.num_frames}], got {num_frames}")
        tokens = sample_tokens(self.model, labels_t, noise, settings or self.settings(), progress=progress)
        return self.tokenizer.decode(tokens)[:, :frames]
