"""Training data sets: each item is `(x, label)` for an `(index, flip)` key of the batch sampler.

`x` is an image [C, S, S] in [-1, 1] (`digits`, `imagefolder`), a clip [T, C, S, S] in [-1, 1]
(`moving-digits`, `clips`; kind "images": the tokenizer takes them as they are), VAE moments [2E, h, w]
(`latents`), or tokens [L, C] (`synthetic`); `kind` says which, and the trainer turns a batch into
tokens through the generator's tokenizer.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

from djepa_core.config import GeneratorConfig

SourceKind = Literal["images", "moments", "tokens"]


class Source(Protocol):
    kind: SourceKind

    def __len__(self) -> int: ...

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]: ...


class TensorSource(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """In-memory images (flip by `torch.flip` on the width axis) or tokens (flip ignored)."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor, kind: SourceKind) -> None:
        if len(x) != len(labels):
            raise ValueError(f"{len(x)} samples but {len(labels)} labels")
        self.x, self.labels, self.kind = x, labels.long(), kind

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        i, flip = key
        x = self.x[i]
        if flip and self.kind == "images":
            x = torch.flip(x, dims=(-1,))
        return x, int(self.labels[i])


def digits_source(split: str, image_size: int) -> TensorSource:
    from djepa_core.data.digits import load_digits_split

    x, y = load_digits_split(split, image_size)  # type: ignore[arg-type]
    return TensorSource(x, y, "images")


def synthetic_source(config: GeneratorConfig, size: int, seed: int) -> TensorSource:
    """Unit-normal tokens of the model's shape and uniform labels (throughput benchmarks only)."""
    g = torch.Generator().manual_seed(seed)
    m = config.model
    tokens = torch.randn(size, m.seq_len, m.token_dim, generator=g)
    labels = torch.randint(0, m.num_classes, (size,), generator=g)
    return TensorSource(tokens, labels, "tokens")


def build_source(kind: str, path: str, split: str, config: GeneratorConfig, seed: int = 0,
                 synthetic_size: int = 1024) -> Source:
    tok = config.tokenizer
    if kind == "digits":
        if tok.channels != 1:
            raise ValueError(f"digits are 1-channel images; the tokenizer expects {tok.channels} channels")
        return digits_source(split, tok.image_size)
    if kind == "imagefolder":
        from djepa_core.data.imagefolder import ImageFolder

        if not path:
            raise ValueError("data.path must name the image folder (root/<class>/<image>)")
        return ImageFolder(path, tok.image_size, channels=tok.channels)
    if kind == "latents":
        from djepa_core.data.latent_cache import LatentCache

        if not path:
            raise ValueError("data.path must name the latent cache written by `djepa cache-latents`")
        return LatentCache(path)
    if kind == "synthetic":
        return synthetic_source(config, synthetic_size, seed)
    if kind in ("moving-digits", "clips"):
        if tok.kind != "video":
            raise ValueError(f"data kind {kind!r} gives video clips; the tokenizer must be kind 'video'")
        if kind == "moving-digits":
            from djepa_core.data.moving_digits import load_moving_digits

            if tok.channels != 1:
                raise ValueError(f"moving digits are 1-channel clips; the tokenizer expects {tok.channels} channels")
            x, y = load_moving_digits(split, num_frames=tok.num_frames, canvas=tok.image_size)  # type: ignore[arg-type]
            return TensorSource(x, y, "images")
        from djepa_core.data.clips import ClipFolder

        if not path:
            raise ValueError("data.path must name the clip folder (root/<class>/<clip>)")
        return ClipFolder(path, tok.image_size, tok.num_frames, channels=tok.channels)
    raise ValueError(f"unknown data kind {kind!r}; use digits, imagefolder, latents, synthetic, moving-digits "
                     "or clips")
