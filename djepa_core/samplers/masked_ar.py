"""The masked autoregressive generation loop (stateless; randomness from a `NoiseSource`).

Start with every token masked and a random order per sample. At step k of K: encode the known
tokens, predict z for all positions, decide how many stay masked (cos(pi/2 (k+1)/K) of L, clamped
to [1, remaining - 1], all at the last step), and let the head sample the tokens that leave the
mask. Tokens are revealed from the end of each order backwards.

Orders: `random` (the reference: one random permutation of all L positions per sample) or, for
(t, h, w) video grids, `frames`: the same permutation regrouped frame by frame, so frame 0's tokens
are revealed first (in random order within the frame), then frame 1's, and so on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from djepa_core.config import SamplingConfig
from djepa_core.heads.gaussian import Denoiser
from djepa_core.heads.schedule import make_schedule
from djepa_core.models.djepa import DJEPA
from djepa_core.models.masking import mask_from_orders
from djepa_core.samplers.ddim import ddim_sample
from djepa_core.samplers.ddpm import ddpm_sample
from djepa_core.samplers.guidance import cfg_scale_at
from djepa_core.samplers.noise import NoiseSource
from djepa_core.samplers.ode import flow_sample, flow_time_grid

# head sampler: (net, cond rows, noise, temperature (a float, or [n, 1] per row), cfg scale or None, segments)
# -> token rows
HeadSampler = Callable[
    [Denoiser, torch.Tensor, NoiseSource, "float | torch.Tensor", "float | torch.Tensor | None",
     "Sequence[int] | None"],
    torch.Tensor,
]


@dataclass(frozen=True)
class SampleSettings:
    num_steps: int = 64
    cfg_scale: float = 1.0
    cfg_schedule: Literal["linear", "constant"] = "linear"
    temperature: float = 0.94
    head_steps: int | None = None  # respaced DDPM steps / ODE grid points (None: the model's)
    ode_method: Literal["euler", "heun"] = "euler"  # flow head
    time_shift: float | None = None  # flow head: the ODE grid's shift t -> t / (t + s - s t) (None: the model's)
    diffusion_method: Literal["ddpm", "ddim"] = "ddpm"  # Gaussian head: ancestral DDPM (the reference) or DDIM
    ddim_eta: float = 0.0  # DDIM's noise scale (0: deterministic steps)
    # the reference's op-for-op arithmetic in the head loop (per-row time embeddings): bit-identical replays
    # of its runs (the parity fixtures) at ~10% more head FLOPs; off, results differ by float rounding only
    reference_arithmetic: bool = False
    order: Literal["random", "frames"] = "random"  # generation order over the token grid (frames: video grids)

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.head_steps is not None and self.head_steps < 2:
            raise ValueError(f"head_steps must be >= 2, got {self.head_steps}")
        if not math.isfinite(self.cfg_scale) or self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be a finite number >= 0, got {self.cfg_scale}")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.diffusion_method not in ("ddpm", "ddim"):
            raise ValueError(f"diffusion_method must be 'ddpm' or 'ddim', got {self.diffusion_method!r}")
        if self.time_shift is not None and (not math.isfinite(self.time_shift) or self.time_shift <= 0):
            raise ValueError(f"time_shift must be a finite number > 0, got {self.time_shift}")
        if not math.isfinite(self.ddim_eta) or self.ddim_eta < 0:
            raise ValueError(f"ddim_eta must be a finite number >= 0, got {self.ddim_eta}")
        if self.cfg_schedule not in ("linear", "constant"):
            raise ValueError(f"cfg_schedule must be 'linear' or 'constant', got {self.cfg_schedule!r}")
        if self.order not in ("random", "frames"):
            raise ValueError(f"order must be 'random' or 'frames', got {self.order!r}")


def settings_from_config(sampling: SamplingConfig, **overrides: Any) -> SampleSettings:
    """A generator's stored sampling defaults as SampleSettings, with `overrides` (None values ignored):
    the one place every generator (image, video, speech) turns its config into settings."""
    names = {f.name for f in dataclasses.fields(SampleSettings)}
    base = SampleSettings(**{f.name: getattr(sampling, f.name) for f in dataclasses.fields(sampling)
                             if f.name in names})
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def make_head_sampler(model: DJEPA, settings: SampleSettings) -> HeadSampler:
    """The head's sampler for this model: respaced DDPM (gauss) or the flow ODE."""
    cfg = model.config
    steps = settings.head_steps or cfg.sampling_steps
    c = cfg.token_dim
    if cfg.head == "gauss":
        schedule = make_schedule(cfg.diffusion_steps, cfg.noise_schedule, respace=steps)

        def gauss(net: Denoiser, cond: torch.Tensor, noise: NoiseSource, temperature: float | torch.Tensor,
                  scale: float | torch.Tensor | None, segments: Sequence[int] | None) -> torch.Tensor:
            if settings.diffusion_method == "ddim":
                return ddim_sample(net, cond, schedule, noise, c, settings.ddim_eta, temperature, scale, segments,
                                   settings.reference_arithmetic)
            return ddpm_sample(net, cond, schedule, noise, c, temperature, scale, segments,
                               settings.reference_arithmetic)

        return gauss

    grid = flow_time_grid(steps, settings.time_shift or cfg.flow_time_shift)

    def flow(net: Denoiser, cond: torch.Tensor, noise: NoiseSource, temperature: float | torch.Tensor,
             scale: float | torch.Tensor | None, segments: Sequence[int] | None) -> torch.Tensor:
        return flow_sample(net, cond, grid, noise, c, scale, settings.ode_method, segments,
                           settings.reference_arithmetic)

    return flow


def frame_major_orders(orders: torch.Tensor, frame_tokens: int) -> torch.Tensor:
    """Regroup random orders [B, L] so later frames come first (revealed last); keeps the order within a frame.

    Position p belongs to frame p // frame_tokens (frame-major token index)."""
    frame = torch.div(orders, frame_tokens, rounding_mode="floor")
    idx = torch.argsort(-frame, dim=1, stable=True)
    return orders.gather(1, idx)


def mask_len_at(step: int, num_steps: int, seq_len: int, remaining: int) -> int:
    """Tokens left masked after `step`: floor(L cos(pi/2 (k+1)/K)) clamped to [1, remaining - 1]."""
    ratio = math.cos(math.pi / 2.0 * (step + 1) / num_steps)
    n = float(math.floor(seq_len * ratio))
    return int(max(1.0, min(float(remaining - 1), n)))


@torch.no_grad()
def sample_tokens(model: DJEPA, labels: torch.Tensor | None, noise: NoiseSource,
                  settings: SampleSettings, batch: int | None = None,
                  head_sampler: HeadSampler | None = None,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Generate tokens [B, L, C] for class `labels` [B] (None: unconditional, `batch` rows).

    Guidance (cfg_scale != 1) doubles the batch with the null class in one forward pass.
    `progress(step, num_steps)` is called after each step.
    """
    cfg = model.config
    device = model.fake_latent.device
    dtype = model.fake_latent.dtype
    b = labels.shape[0] if labels is not None else batch
    if b is None:
        raise ValueError("give labels or a batch size")
    length, c = cfg.seq_len, cfg.token_dim
    sampler = head_sampler or make_head_sampler(model, settings)
    use_cfg = settings.cfg_scale != 1.0

    orders = noise.orders(b, length, device)  # (B, L)
    if settings.order == "frames":
        if len(cfg.grid) != 3:
            raise ValueError(f"order 'frames' needs a (t, h, w) token grid, the model's is {cfg.grid}")
        orders = frame_major_orders(orders, cfg.grid[1] * cfg.grid[2])
    mask = torch.ones(b, length, device=device)
    tokens = torch.zeros(b, length, c, device=device, dtype=dtype)
    class_vec = model.class_vectors(labels.to(device) if labels is not None else None, b)
    if use_cfg:
        class_vec = torch.cat([class_vec, model.null_vectors(b)], dim=0)

    for step in range(settings.num_steps):
        remaining = int(mask[0].sum())
        x_in, m_in = (torch.cat([tokens, tokens]), torch.cat([mask, mask])) if use_cfg else (tokens, mask)
        mask_len = mask_len_at(step, settings.num_steps, length, remaining)
        mask_next = mask_from_orders(orders, mask_len)
        last = step >= settings.num_steps - 1
        to_pred = mask.bool() if last else torch.logical_xor(mask.bool(), mask_next.bool())
        query = torch.cat([to_pred, to_pred]) if use_cfg else to_pred
        enc = model.encode(x_in, m_in, class_vec)
        # [cond rows; uncond rows] at the slots to generate: the reference's full predictor pass op for op, else
        # the same z with the last predictor block at these slots only
        cond = model.predict(enc, m_in)[query] if settings.reference_arithmetic else model.predict_at(enc, m_in, query)
        mask = mask_next
        per_sample = int(to_pred[0].sum())
        segments = [per_sample] * b
        scale: float | torch.Tensor | None = None
        if use_cfg:
            segments = segments * 2
            scale = cfg_scale_at(settings.cfg_schedule, settings.cfg_scale, length, mask_len)
        # the head's state stays in the model's dtype also where autocast runs the network in bf16
        rows = sampler(model.head, cond.to(dtype), noise, settings.temperature, scale, segments)
        if use_cfg:
            rows = rows[: rows.shape[0] // 2]
        tokens = tokens.clone()
        tokens[to_pred] = rows.to(tokens.dtype)
        if progress is not None:
            progress(step + 1, settings.num_steps)
        if step >= settings.num_steps - 1 or int(mask[0].sum()) == 0:
            break
    return tokens
