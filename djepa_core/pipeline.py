"""The class-conditional image generator: D-JEPA network + tokenizer + sampling defaults.

`generate` is the one call the CLI and the service use: class ids in, images in [-1, 1] out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from djepa_core.config import GeneratorConfig
from djepa_core.fastpath import FastPath, compile_model
from djepa_core.models.djepa import DJEPA
from djepa_core.samplers.masked_ar import SampleSettings, sample_tokens, settings_from_config
from djepa_core.samplers.noise import GeneratorNoise, NoiseSource, PerSampleNoise
from djepa_core.tokenizers.factory import build_tokenizer
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.tokenizers.patches import PatchTokenizer


def class_labels_and_noise(labels: Sequence[int] | torch.Tensor, num_classes: int, device: torch.device,
                           seeds: Sequence[int] | None, seed: int | None, noise: NoiseSource | None,
                           what: str) -> tuple[torch.Tensor, NoiseSource]:
    """Checked class ids [B] on `device` and the noise source of one `generate` call (image or video):
    `noise` if given, else one generator per sample from `seeds`, else one generator from `seed` (0)."""
    labels_t = torch.as_tensor(labels, dtype=torch.long).reshape(-1).to(device)
    if labels_t.numel() == 0:
        raise ValueError("need at least one class id")
    if int(labels_t.min()) < 0 or int(labels_t.max()) >= num_classes:
        raise ValueError(f"class ids must be in [0, {num_classes}), got {labels_t.tolist()}")
    if noise is not None:
        return labels_t, noise
    if seeds is not None:
        if len(seeds) != labels_t.numel():
            raise ValueError(f"{len(seeds)} seeds for {labels_t.numel()} {what}")
        return labels_t, PerSampleNoise(seeds, device="cpu")
    return labels_t, GeneratorNoise(seed=0 if seed is None else seed)


class ImageGenerator:
    def __init__(self, config: GeneratorConfig, model: DJEPA, tokenizer: PatchTokenizer | VAETokenizer) -> None:
        if tuple(tokenizer.grid) != tuple(config.model.grid) or tokenizer.token_dim != config.model.token_dim:
            raise ValueError(f"tokenizer grid {tokenizer.grid} x {tokenizer.token_dim} does not match the model's "
                             f"{config.model.grid} x {config.model.token_dim}")
        self.config = config
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.fast = FastPath()

    @classmethod
    def from_config(cls, config: GeneratorConfig, seed: int = 0) -> ImageGenerator:
        """An untrained generator (random init from `seed`), for tests and smoke runs."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DJEPA(config.model)
            tokenizer = build_tokenizer(config.tokenizer)
        return cls(config, model, tokenizer)

    @property
    def device(self) -> torch.device:
        return self.model.fake_latent.device

    def to(self, device: torch.device | str) -> ImageGenerator:
        self.model.to(device)
        self.tokenizer.to(device)
        return self

    def accelerate(self, fast: FastPath) -> ImageGenerator:
        """Turn on the opt-in fast paths of `djepa_core.fastpath` (precision, torch.compile) for later generations."""
        if fast.compile != "none":
            if self.fast.compile != "none":
                raise ValueError("this generator is already compiled")
            compile_model(self.model, fast.compile, fast.compile_mode)
        elif self.fast.compile != "none":  # a compiled model stays compiled: only the precision changes
            fast = dataclasses.replace(fast, compile=self.fast.compile, compile_mode=self.fast.compile_mode)
        self.fast = fast
        return self

    def settings(self, **overrides: Any) -> SampleSettings:
        """The config's sampling defaults with `overrides` (None values ignored)."""
        return settings_from_config(self.config.sampling, **overrides)

    @torch.no_grad()
    def generate(self, labels: Sequence[int] | torch.Tensor, *, seeds: Sequence[int] | None = None,
                 seed: int | None = None, settings: SampleSettings | None = None,
                 noise: NoiseSource | None = None,
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Images [B, C, S, S] in [-1, 1] (not clamped) for class ids `labels`.

        Randomness: `seeds` (one per image: each image depends only on its own seed), else `seed`
        (one generator for the batch), else `noise`.
        """
        labels_t, noise = class_labels_and_noise(labels, self.config.model.num_classes, self.device, seeds, seed,
                                                 noise, "images")
        with self.fast.autocast(self.device):
            tokens = sample_tokens(self.model, labels_t, noise, settings or self.settings(), progress=progress)
        return self.tokenizer.decode(tokens)
