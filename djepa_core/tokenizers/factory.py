"""Build the tokenizer a :class:`TokenizerConfig` names (the one place that knows every kind)."""

from __future__ import annotations

from typing import Protocol

import torch

from djepa_core.config import TokenizerConfig
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.tokenizers.patches import PatchTokenizer
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig
from djepa_core.tokenizers.video import VideoPatchTokenizer


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
    if config.kind == "video":
        raise ValueError("a video tokenizer config; build it with build_video_tokenizer (or build_any_tokenizer)")
    if config.kind == "patches":
        return PatchTokenizer(config.image_size, config.channels, config.patch_size, config.scale, config.shift)
    vae = AutoencoderKL(VAEConfig.from_dict(config.vae) if config.vae else VAEConfig())
    stride = vae.downsample_factor
    patch = config.patch_size // stride  # latent pixels per token side
    if patch * stride != config.patch_size:
        raise ValueError(f"tokenizer patch_size {config.patch_size} is not a multiple of the VAE stride {stride}")
    return VAETokenizer(vae, image_size=config.image_size, scale=config.scale, shift=config.shift,
                        patch_size=patch)


def build_video_tokenizer(config: TokenizerConfig) -> VideoPatchTokenizer:
    """The pixel-patch (tubelet) tokenizer of video clips (no weights)."""
    if config.kind != "video":
        raise ValueError(f"not a video tokenizer config (kind {config.kind!r})")
    return VideoPatchTokenizer(config.image_size, config.channels, config.patch_size, config.num_frames,
                               config.tubelet, config.scale, config.shift)


def build_any_tokenizer(config: TokenizerConfig) -> PatchTokenizer | VAETokenizer | VideoPatchTokenizer:
    """Image or video tokenizer, whichever `config.kind` names (the trainer's entry point)."""
    return build_video_tokenizer(config) if config.kind == "video" else build_tokenizer(config)
