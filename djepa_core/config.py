"""Typed configuration of a D-JEPA generator.

One :class:`ModelConfig` rebuilds the exact network; it is stored (resolved, as JSON) in every
checkpoint. Dicts are read with strict keys: an unknown key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

HeadKind = Literal["gauss", "flow"]

T = TypeVar("T")


def from_dict_strict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys (named in the error)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown config keys {unknown}; known keys are {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss settings of the D-JEPA network (the reference's constructor arguments).

    Sizes: the token grid `grid` (h, w) or (t, h, w) gives L = prod(grid) tokens of `token_dim`
    channels each. Encoder and predictor ("decoder" in the reference) are pre-norm ViT stacks.
    """

    num_classes: int = 1000
    grid: tuple[int, ...] = (16, 16)
    token_dim: int = 16
    encoder_dim: int = 768
    encoder_depth: int = 12
    encoder_heads: int = 12
    decoder_dim: int = 768
    decoder_depth: int = 12
    decoder_heads: int = 12
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    buffer_size: int = 64
    label_drop_prob: float = 0.1
    attn_dropout: float = 0.1
    proj_dropout: float = 0.1
    # denoising head
    head: HeadKind = "gauss"
    head_depth: int = 6
    head_width: int = 1024
    diffusion_steps: int = 1000  # training process of the Gaussian head
    noise_schedule: str = "cosine"
    sampling_steps: int = 100  # respaced DDPM steps, or ODE grid points of the flow head
    flow_time_shift: float = 1.0
    diffusion_batch_mul: int = 4
    # losses
    diffusion_weight: float = 1.0
    jepa_weight: float = 1.0  # 0 builds no JEPA projection (as reference checkpoints without `jepaloss.`)
    jepa_beta: float = 2.0
    mask_ratio_min: float = 0.7
    mask_ratio_max: float = 1.0
    mask_ratio_mean: float = 1.0
    mask_ratio_std: float = 0.25
    grad_checkpointing: bool = False
    # init of the learned position tables: "normal" (the reference's N(0, 0.02)) or "sincos" (models/posembed.py)
    pos_init: Literal["normal", "sincos"] = "normal"

    def __post_init__(self) -> None:
        if self.pos_init not in ("normal", "sincos"):
            raise ValueError(f"pos_init must be 'normal' or 'sincos', got {self.pos_init!r}")
        if self.encoder_dim % self.encoder_heads or self.decoder_dim % self.decoder_heads:
            raise ValueError("encoder_dim/decoder_dim must be divisible by their head counts")
        if self.head not in ("gauss", "flow"):
            raise ValueError(f"head must be 'gauss' or 'flow', got {self.head!r}")
        if not 0.0 < self.mask_ratio_min <= self.mask_ratio_max <= 1.0:
            raise ValueError("need 0 < mask_ratio_min <= mask_ratio_max <= 1")
        if any(g <= 0 for g in self.grid):
            raise ValueError(f"grid must be positive, got {self.grid}")

    @property
    def seq_len(self) -> int:
        return math.prod(self.grid)

    @property
    def head_out_channels(self) -> int:
        """Gaussian head: eps and variance values (2C); flow head: velocity (C)."""
        return 2 * self.token_dim if self.head == "gauss" else self.token_dim

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["grid"] = list(self.grid)
        if self.pos_init == "normal":  # the reference's init: configs (and files) stay as before the option existed
            del d["pos_init"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return from_dict_strict(cls, data, "model")

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TokenizerConfig:
    """How images become tokens: the KL-16 VAE (`vae`), pixel patches (`patches`), or pixel patches of
    video clips (`video`: `num_frames` frames, `tubelet` consecutive frames per token).

    `scale`/`shift` map raw latents (or pixels in [-1, 1]) to the model's token space:
    tokens = (x - shift) * scale.
    """

    kind: Literal["vae", "patches", "video"] = "vae"
    image_size: int = 256
    channels: int = 3
    patch_size: int = 16  # pixels per token side (VAE: its stride, 16)
    scale: float = 0.2325
    shift: float = 0.0
    vae: dict[str, Any] = field(default_factory=dict)  # VAEConfig fields when kind == "vae"
    num_frames: int = 1  # video: frames per clip
    tubelet: int = 1  # video: frames per token (a multiple of num_frames)

    def __post_init__(self) -> None:
        if self.kind not in ("vae", "patches", "video"):
            raise ValueError(f"tokenizer kind must be 'vae', 'patches' or 'video', got {self.kind!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if self.num_frames < 1 or self.tubelet < 1 or self.num_frames % self.tubelet:
            raise ValueError(f"num_frames {self.num_frames} must be a positive multiple of tubelet {self.tubelet}")
        if self.kind != "video" and (self.num_frames, self.tubelet) != (1, 1):
            raise ValueError("num_frames and tubelet apply to the video tokenizer only")

    @property
    def grid(self) -> tuple[int, ...]:
        """(h, w) token grid of an image, (t, h, w) of a video clip."""
        n = self.image_size // self.patch_size
        return (self.num_frames // self.tubelet, n, n) if self.kind == "video" else (n, n)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.kind != "video":  # image configs (and the files that store them) stay as before video existed
            del d["num_frames"], d["tubelet"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        return from_dict_strict(cls, data, "tokenizer")


@dataclass(frozen=True)
class SamplingConfig:
    """Default generation settings (the reference's suggestions for ImageNet)."""

    num_steps: int = 64  # masked-AR iterations
    cfg_scale: float = 1.0
    cfg_schedule: Literal["linear", "constant"] = "linear"
    temperature: float = 0.94
    head_steps: int | None = None  # override of the head's sampling steps (None: model's)
    ode_method: Literal["euler", "heun"] = "euler"  # flow head
    diffusion_method: Literal["ddpm", "ddim"] = "ddpm"  # Gaussian head
    ddim_eta: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        return from_dict_strict(cls, data, "sampling")


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator: network, tokenizer, sampling defaults, labels."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    name: str = "djepa"
    class_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "sampling": self.sampling.to_dict(),
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {"name", "model", "tokenizer", "sampling", "class_names"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(
            model=ModelConfig.from_dict(data.get("model", {})),
            tokenizer=TokenizerConfig.from_dict(data.get("tokenizer", {})),
            sampling=SamplingConfig.from_dict(data.get("sampling", {})),
            name=str(data.get("name", "djepa")),
            class_names=tuple(data.get("class_names", ())),
        )
