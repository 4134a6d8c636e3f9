"""Build the tokenizer a :class:`TokenizerConfig` names (the one place that knows every kind)."""

from __future__ import annotations

from typing import Protocol

import torch

from djepa_core.config import TokenizerConfig
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.tokenizers.patches import PatchTokenizer
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig


class ImageTokenizer(Protocol):
    image_size: int

    @property
    def grid(self) -> tuple[int, int]: ...

    @property
    def token_dim(self) -> int: ...

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor: ...

    def decode(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def to(self, *args: object, **kwargs: object) -> ImageTokenizer: ...


def build_tokenizer(config: TokenizerConfig) -> PatchTokenizer | VAETokenizer:
    """A tokenizer with fresh (untrained, for the VAE) weights; load a state dict to use real ones."""
    if config.kind == "patches":
        return PatchTokenizer(config.image_size, config.channels, config.patch_size, config.scale, config.shift)
    vae = AutoencoderKL(VAEConfig.from_dict(config.vae) if config.vae else VAEConfig())
    stride = vae.downsample_factor
    patch = config.patch_size // stride  # latent pixels per token side
    if patch * stride != config.patch_size:
        raise ValueError(f"tokenizer patch_size {config.patch_size} is not a multiple of the VAE stride {stride}")
    return VAETokenizer(vae, image_size=config.image_size, scale=config.scale, shift=config.shift,
                        patch_size=patch)
