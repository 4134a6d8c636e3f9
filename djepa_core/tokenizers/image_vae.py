"""Image tokenizer: a frozen KL-16 VAE plus the latent scale and the token grid.

Convention (D-JEPA's KL16_MAR entry, as in MAR; fixtures/official/README.md section 4):
tokens = patchify((z - shift) * scale) with z a posterior sample of VAE.encode(image in [-1, 1]),
scale 0.2325, shift 0; images = VAE.decode(unpatchify(tokens) / scale + shift). The scale belongs here,
never to the trainer. Images for files/metrics are mapped by :func:`to_uint8`.
"""

from __future__ import annotations

import torch
from torch import nn

from djepa_core.tokenizers.grid import patchify, unpatchify
from djepa_core.tokenizers.vae import AutoencoderKL, DiagonalGaussian

KL16_MAR_SCALE = 0.2325
KL16_MAR_SHIFT = 0.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W] in [-1, 1] -> uint8 [B, H, W, C]: round(clamp((x + 1) / 2, 0, 1) * 255).

    Rounding is half-to-even (torch.round), as numpy's round in the reference. Same device as input."""
    if images.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    x = torch.clamp((images.float() + 1.0) / 2.0, 0.0, 1.0) * 255.0
    return torch.round(x).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # (B, H, W, C)


class VAETokenizer(nn.Module):
    """Maps images [B, 3, S, S] in [-1, 1] to tokens [B, L, token_dim] and back.

    L = (S / f / p)**2 with f the VAE's down-sampling factor (16) and p the patch size (1), token_dim
    = embed_dim * p * p (16). The VAE is frozen (no gradients, always in eval mode). Computation runs
    in the VAE parameters' dtype on their device; the posterior, scaling and the returned tokens and
    images are float32.
    """

    def __init__(self, vae: AutoencoderKL, image_size: int | None = None, scale: float = KL16_MAR_SCALE,
                 shift: float = KL16_MAR_SHIFT, patch_size: int = 1) -> None:
        super().__init__()
        self.vae = vae
        vae.requires_grad_(False)
        vae.eval()
        size = int(image_size) if image_size is not None else vae.config.resolution
        f = vae.downsample_factor
        if size % (f * patch_size):
            raise ValueError(f"image size {size} is not divisible by {f} x patch {patch_size}")
        self._image_size = size
        self._scale = float(scale)
        self._shift = float(shift)
        self.patch_size = int(patch_size)

    def train(self, mode: bool = True) -> VAETokenizer:
        """The VAE stays in eval mode whatever the caller's mode."""
        super().train(mode)
        self.vae.eval()
        return self

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def shift(self) -> float:
        return self._shift

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def latent_grid(self) -> tuple[int, int]:
        """(h, w) of the latent map."""
        n = self._image_size // self.vae.downsample_factor
        return (n, n)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the token grid (latent grid divided by the patch size)."""
        h, w = self.latent_grid
        return (h // self.patch_size, w // self.patch_size)

    @property
    def num_tokens(self) -> int:
        h, w = self.grid
        return h * w

    @property
    def token_dim(self) -> int:
        return self.vae.embed_dim * self.patch_size * self.patch_size

    def _param(self) -> torch.Tensor:
        return next(self.vae.parameters())

    def _check_images(self, images: torch.Tensor) -> None:
        s = self._image_size
        if images.dim() != 4 or tuple(images.shape[-2:]) != (s, s):
            raise ValueError(f"expected images [B, C, {s}, {s}], got {tuple(images.shape)}")

    @torch.no_grad()
    def encode_moments(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, S, S] in [-1, 1] -> float32 moments [B, 2E, h, w] (what latent caches store)."""
        self._check_images(images)
        p = self._param()
        return self.vae.encode_moments(images.to(p.device, p.dtype)).float()

    def tokens_from_moments(self, moments: torch.Tensor, generator: torch.Generator | None = None,
                            sample: bool = True) -> torch.Tensor:
        """Moments [B, 2E, h, w] -> tokens [B, L, token_dim]: (posterior sample (or mean) - shift) * scale.

        The draw uses `generator` on the moments' device (float32)."""
        posterior = self.vae.posterior(moments.float())
        z = posterior.sample(generator) if sample else posterior.mode()  # (B, E, h, w)
        return self.latents_to_tokens(z)

    def latents_to_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents [B, E, h, w] -> tokens [B, L, token_dim] (scaled, patchified)."""
        return patchify((z.float() - self._shift) * self._scale, self.patch_size)

    def tokens_to_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L, token_dim] -> raw latents [B, E, h, w] (unpatchified, unscaled)."""
        if tokens.dim() != 3 or tokens.shape[1:] != (self.num_tokens, self.token_dim):
            raise ValueError(f"expected tokens [B, {self.num_tokens}, {self.token_dim}], "
                             f"got {tuple(tokens.shape)}")
        z = unpatchify(tokens.float(), self.grid, self.patch_size)  # (B, E, h, w)
        return z / self._scale + self._shift

    def posterior(self, images: torch.Tensor) -> DiagonalGaussian:
        """Float32 posterior of images [B, 3, S, S]."""
        return self.vae.posterior(self.encode_moments(images))

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor:
        """Images [B, 3, S, S] in [-1, 1] -> float32 tokens [B, L, token_dim] (sampled unless `sample`
        is False, then the posterior mean)."""
        return self.tokens_from_moments(self.encode_moments(images), generator, sample=sample)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L, token_dim] -> float32 images [B, 3, S, S], roughly in [-1, 1] (not clamped)."""
        z = self.tokens_to_latents(tokens)
        p = self._param()
        return self.vae.decode(z.to(p.device, p.dtype)).float()
