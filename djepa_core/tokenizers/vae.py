"""KL-16 VAE: the LDM-style AutoencoderKL released with MAR (images <-> 16-channel latents).

With the default :class:`VAEConfig` the state dict equals MAR's KL-16 VAE key for key, in order and
shape (`fixtures/official/manifests/vae_kl16.json`, 66,456,019 parameters), so its released weights load
strictly (see :func:`djepa_core.compat.mar_vae.load_mar_vae`). A 256x256 image becomes a 16x16 latent map
(down-sampling factor 2**(len(ch_mult)-1) = 16).

Device-agnostic: nothing here picks a device; tensors follow the inputs and the module's parameters.
The latent scale (0.2325) is NOT applied here; it belongs to
:class:`djepa_core.tokenizers.image_vae.VAETokenizer`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from djepa_core.tokenizers.vae_blocks import Decoder, Encoder

LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0


@dataclass(frozen=True)
class VAEConfig:
    """Constructor arguments of :class:`AutoencoderKL` (defaults: MAR's KL-16 VAE).

    `resolution` is the nominal image size; it only decides at which levels attention blocks exist
    (level i has nominal size resolution / 2**i). `use_variational=False` gives a deterministic
    autoencoder whose quant_conv outputs embed_dim channels (no log-variance).
    """

    embed_dim: int = 16
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    resolution: int = 256
    encoder_attn_resolutions: tuple[int, ...] = (16,)
    decoder_attn_resolutions: tuple[int, ...] = ()
    in_channels: int = 3
    out_channels: int = 3
    use_variational: bool = True

    def __post_init__(self) -> None:
        for name in ("ch_mult", "encoder_attn_resolutions", "decoder_attn_resolutions"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not self.ch_mult:
            raise ValueError("ch_mult must have at least one level")
        if self.embed_dim <= 0 or self.ch <= 0 or self.num_res_blocks <= 0:
            raise ValueError(f"embed_dim, ch and num_res_blocks must be positive: {self}")

    @property
    def downsample_factor(self) -> int:
        """Image pixels per latent pixel along each axis (16 for KL-16)."""
        return int(2 ** (len(self.ch_mult) - 1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError, missing keys take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VAEConfig keys: {unknown}")
        return cls(**data)


class DiagonalGaussian:
    """Diagonal Gaussian posterior from VAE moments [B, 2E, h, w] (channels: E means, then E log-variances).

    logvar is clamped to [-30, 20]; std = exp(logvar / 2). A `deterministic` posterior has std = 0 (used
    for non-variational autoencoders, where the moments carry zeros in place of the log-variance).
    """

    def __init__(self, moments: torch.Tensor, deterministic: bool = False) -> None:
        if moments.dim() < 2 or moments.shape[1] % 2:
            raise ValueError(f"moments need an even channel count on dim 1, got {tuple(moments.shape)}")
        self.moments = moments
        self.deterministic = deterministic
        mean, logvar = torch.chunk(moments, 2, dim=1)  # (B, E, h, w) each
        self.mean = mean
        self.logvar = torch.clamp(logvar, LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)
        if deterministic:
            self.std = torch.zeros_like(self.mean)

    @property
    def var(self) -> torch.Tensor:
        return self.std * self.std if self.deterministic else torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * xi, xi ~ N(0, I) drawn with `generator` on the moments' device and dtype."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device,
                            dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        """The posterior mean."""
        return self.mean


class AutoencoderKL(nn.Module):
    """MAR's KL-16 autoencoder. State-dict order: encoder, decoder, quant_conv, post_quant_conv.

    - `encode_moments(x)`: image [B, 3, H, W] in [-1, 1] -> moments [B, 2E, H/f, W/f] (quant_conv output;
      what latent caches store).
    - `encode(x)`: -> :class:`DiagonalGaussian`.
    - `decode(z)`: raw (unscaled) latent [B, E, h, w] -> image [B, 3, h*f, w*f] (no clamp).
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else VAEConfig()
        self.config = cfg
        e = cfg.embed_dim
        self.encoder = Encoder(ch=cfg.ch, ch_mult=cfg.ch_mult, num_res_blocks=cfg.num_res_blocks,
                               attn_resolutions=cfg.encoder_attn_resolutions, resolution=cfg.resolution,
                               in_channels=cfg.in_channels, z_channels=e, double_z=True)
        self.decoder = Decoder(ch=cfg.ch, out_channels=cfg.out_channels, ch_mult=cfg.ch_mult,
                               num_res_blocks=cfg.num_res_blocks,
                               attn_resolutions=cfg.decoder_attn_resolutions, resolution=cfg.resolution,
                               z_channels=e)
        self.quant_conv = nn.Conv2d(2 * e, (2 if cfg.use_variational else 1) * e, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(e, e, kernel_size=1)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    def encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, C_in, H, W] -> moments [B, 2E, H/f, W/f] (mean | unclamped logvar).

        For a non-variational config the log-variance half is zeros (see DiagonalGaussian)."""
        f = self.downsample_factor
        if x.dim() != 4 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"expected images [B, C, H, W] with H, W divisible by {f}, "
                             f"got {tuple(x.shape)}")
        h = self.encoder(x)  # (B, 2E, h, w)
        moments: torch.Tensor = self.quant_conv(h)  # (B, 2E or E, h, w)
        if not self.config.use_variational:
            moments = torch.cat([moments, torch.zeros_like(moments)], dim=1)  # (B, 2E, h, w)
        return moments

    def posterior(self, moments: torch.Tensor) -> DiagonalGaussian:
        """The posterior for stored moments (deterministic when the config is not variational)."""
        return DiagonalGaussian(moments, deterministic=not self.config.use_variational)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """Image [B, C_in, H, W] -> posterior over latents [B, E, H/f, W/f]."""
        return self.posterior(self.encode_moments(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, E, h, w] -> image [B, C_out, h*f, w*f] (values roughly in [-1, 1], unclamped)."""
        if z.dim() != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected latents [B, {self.embed_dim}, h, w], got {tuple(z.shape)}")
        image: torch.Tensor = self.decoder(self.post_quant_conv(z))
        return image

    def forward(self, x: torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruction: (decode(posterior sample or mode), posterior)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.decode(z), posterior
