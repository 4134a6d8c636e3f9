"""Masked-AR generation of mel tokens from text (stateless; randomness from a `NoiseSource`).

The loop of `masked_ar.sample_tokens` with per-row lengths: slots past a row's length hold silence and
are visible from the start; each row reveals its own speech slots along a random order with the
cosine schedule over its own length (`mask_len_at`), and the encoder's per-row drop sets are grown to
the count a full-length row would still have masked at that step (`equalize_drop`), so a row depends
only on its own text, length and seed. Guidance doubles the batch with the empty text (the null
condition) in one forward and applies the scale inside the head (`make_head_sampler`), with the linear
schedule of `cfg_scale_at` on each row's own length.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from djepa_core.models.tts import TextToSpeechDJEPA, equalize_drop
from djepa_core.samplers.guidance import cfg_scale_at
from djepa_core.samplers.masked_ar import HeadSampler, SampleSettings, make_head_sampler, mask_len_at
from djepa_core.samplers.noise import NoiseSource


def speech_orders(orders: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Random orders [B, L] regrouped so each row's speech slots (< length) come first, order kept."""
    pad = orders >= lengths[:, None]
    return orders.gather(1, torch.argsort(pad.long(), dim=1, stable=True))


@torch.no_grad()
def sample_speech_tokens(model: TextToSpeechDJEPA, text: torch.Tensor, lengths: torch.Tensor, noise: NoiseSource,
                         settings: SampleSettings, speakers: torch.Tensor | None = None,
                         head_sampler: HeadSampler | None = None, slots: int | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         frames: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens [B, L', C] for symbol ids `text` [B, T] (0-padded) and speech lengths [B] in tokens (1..L');
    slots past each length are silence. `slots` L' <= L (default the model's L): fewer slots cost less;
    a row then depends on its text, length, seed and L' (bucket rows by L' to batch them). `frames` [B]:
    the mel frames the local text alignment spans (models with `local_text`; default lengths * k)."""
    cfg = model.config
    device, dtype = model.fake_latent.device, model.fake_latent.dtype
    b, length, c = text.shape[0], slots or cfg.seq_len, cfg.token_dim
    if not 1 <= length <= cfg.seq_len:
        raise ValueError(f"slots must be in [1, {cfg.seq_len}], got {slots}")
    lengths = lengths.to(device).long()
    if lengths.shape != (b,) or int(lengths.min()) < 1 or int(lengths.max()) > length:
        raise ValueError(f"lengths must be [B] in [1, {length}], got {lengths.tolist()}")
    sampler = head_sampler or make_head_sampler(model, settings)
    use_cfg = settings.cfg_scale != 1.0

    pos = torch.arange(length, device=device)
    real = pos[None] < lengths[:, None]  # (B, L)
    orders = speech_orders(noise.orders(b, length, device), lengths)
    rank = torch.empty_like(orders).scatter_(1, orders, pos.expand(b, -1).contiguous())  # rank[i, p]
    tie = 1.0 - pos.float()[None].expand(b, -1) / length  # extra drops take the last silence slots first
    masked = real.clone()
    tokens = torch.full((b, length, c), model.speech.silence, device=device, dtype=dtype)
    text = text.to(device)
    if frames is None:
        frames = lengths * model.speech.frames_per_token
    frames = frames.to(device)
    prefix, local = model.condition(text, frames, length, speakers)
    if use_cfg:
        null_prefix, null_local = model.condition(torch.zeros_like(text), frames, length, speakers)
        prefix = torch.cat([prefix, null_prefix], dim=0)
        local = None if local is None or null_local is None else torch.cat([local, null_local], dim=0)

    full = length  # slots a full-length row still has masked (the drop count of every row)
    for step in range(settings.num_steps):
        drop = equalize_drop(masked, real, tie, full).float()
        x_in, m_in = (torch.cat([tokens, tokens]), torch.cat([drop, drop])) if use_cfg else (tokens, drop)
        z = model.predict(model.encode(x_in, m_in, prefix, local), m_in, local)  # (B or 2B, L, Dd)

        last = step >= settings.num_steps - 1
        remaining = masked.sum(1).tolist()
        keep_masked = [0 if last or r == 0 else mask_len_at(step, settings.num_steps, int(n), r)
                       for r, n in zip(remaining, lengths.tolist(), strict=True)]
        full = 0 if last else mask_len_at(step, settings.num_steps, length, full)
        masked_next = rank < torch.tensor(keep_masked, device=device)[:, None]
        to_pred = masked & ~masked_next
        masked = masked_next
        segments = to_pred.sum(1).tolist()
        scale: float | torch.Tensor | None = None
        if use_cfg:
            cond = torch.cat([z[:b][to_pred], z[b:][to_pred]])
            segments = segments * 2
            # one scale per row (its own length and progress), repeated over its rows: [n, 1]
            per_row = torch.stack([torch.as_tensor(cfg_scale_at(settings.cfg_schedule, settings.cfg_scale, int(n), m),
                                                   dtype=torch.float32)
                                   for n, m in zip(lengths.tolist(), keep_masked, strict=True)])
            scale = per_row.to(device).repeat_interleave(to_pred.sum(1))[:, None]
        else:
            cond = z[to_pred]
        if cond.shape[0]:
            rows = sampler(model.head, cond, noise, settings.temperature, scale, segments)
            if use_cfg:
                rows = rows[: rows.shape[0] // 2]
            tokens = tokens.clone()
            tokens[to_pred] = rows.to(tokens.dtype)
        if progress is not None:
            progress(step + 1, settings.num_steps)
        if not bool(masked.any()):
            break
    return tokens
