"""The masked-AR loop one step at a time, over explicit per-request states (continuous batching).

`sample_tokens` (masked_ar.py) runs all K steps of one batch whose rows share their settings. Here
every request carries its own state: its tokens, mask, order, step index, settings (steps, guidance,
temperature) and its own random stream (a per-request generator, as `PerSampleNoise`). `advance`
runs ONE AR step for any set of states at once, whatever their step, settings or step counts:

- backbone: one forward for all rows ([cond rows of every request; uncond rows of the guided ones]).
  Rows at different steps keep different numbers of tokens visible: `DJEPA.encode_ragged` packs each
  row's kept tokens for the linear layers and runs attention per bucket of rows of similar length,
  padded to the bucket's longest row with a key-padding mask (padded keys add an exact 0 to the
  softmax sums, so a row sees exactly what `encode` shows it; models/ragged.py); the predictor always
  sees all L slots, so it needs no mask, and its last block runs only at the slots the head reads
  (`predict_at`). Rows all at one count take the dense `encode`.
- head: one sampler call per head configuration (head steps and method are the engine's, so in the
  service one call), rows of every request together, with per-row temperature and per-row guidance
  (`MixedGuidance`: only the guided requests get unconditional rows).
- randomness: draws are made from each request's generator in the order `sample_tokens` makes them
  for that request alone (`StepNoise`), so a request's result does not depend on its batch-mates or
  on when it joined; results equal the sequential sampler's up to float rounding of batch-size
  dependent BLAS blocking (the tolerances of tests/samplers).

Functions are stateless: `start` makes a state, `advance` returns the next states, `finished`,
`partial_tokens` read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from djepa_core.heads.gaussian import Denoiser
from djepa_core.models.djepa import DJEPA
from djepa_core.models.ragged import MAX_BUCKETS
from djepa_core.samplers.bound import StepDenoiser, bind_rows
from djepa_core.samplers.guidance import cfg_scale_at
from djepa_core.samplers.masked_ar import (
    HeadSampler,
    SampleSettings,
    frame_major_orders,
    make_head_sampler,
    mask_len_at,
)


@dataclass(frozen=True)
class ARState:
    """One request in flight: generation `step` of `settings.num_steps` done so far."""

    label: int | None  # class id (None: unconditional)
    settings: SampleSettings
    generator: torch.Generator  # this request's random stream (CPU), advanced in place by `advance`
    orders: torch.Tensor  # [L] int64: generation order (tokens revealed from the end backwards)
    mask: torch.Tensor  # [L] float 0/1, 1 = still masked
    tokens: torch.Tensor  # [L, C]
    step: int = 0
    done: bool = False

    @property
    def guided(self) -> bool:
        return self.settings.cfg_scale != 1.0


def head_key(settings: SampleSettings) -> tuple[object, ...]:
    """Settings that must be equal for rows to share one head sampler call."""
    return (settings.head_steps, settings.diffusion_method, settings.ddim_eta, settings.ode_method,
            settings.time_shift, settings.reference_arithmetic)


def start(model: DJEPA, label: int | None, seed: int, settings: SampleSettings) -> ARState:
    """A fresh state: every token masked, the order drawn from `seed`'s generator (as `PerSampleNoise`)."""
    cfg = model.config
    if label is not None and not 0 <= label < cfg.num_classes:
        raise ValueError(f"class ids must be in [0, {cfg.num_classes}), got {label}")
    device, dtype = model.fake_latent.device, model.fake_latent.dtype
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    orders = torch.randperm(cfg.seq_len, generator=gen, device=gen.device).to(device)
    if settings.order == "frames":
        if len(cfg.grid) != 3:
            raise ValueError(f"order 'frames' needs a (t, h, w) token grid, the model's is {cfg.grid}")
        orders = frame_major_orders(orders[None], cfg.grid[1] * cfg.grid[2])[0]
    return ARState(label, settings, gen, orders, torch.ones(cfg.seq_len, device=device),
                   torch.zeros(cfg.seq_len, cfg.token_dim, device=device, dtype=dtype))


def finished(state: ARState) -> bool:
    return state.done


def partial_tokens(state: ARState) -> torch.Tensor:
    """The tokens so far [L, C] (still-masked positions are zeros): a preview decodes these."""
    return state.tokens


class StepNoise:
    """The head's draws of one AR step, from each request's own generator, in the order the sequential
    sampler makes them for that request alone: the first draw (the starting noise) for its conditional
    rows only; every later draw also for its unconditional rows when guided (drawn, then dropped: only
    the conditional half of x is ever used)."""

    def __init__(self, generators: Sequence[torch.Generator], guided: Sequence[bool]) -> None:
        self.generators = list(generators)
        self.guided = list(guided)
        self.first = True

    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None, *,
               device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if segments is None or len(segments) != len(self.generators) or sum(segments) != shape[0]:
            raise ValueError(f"StepNoise needs one segment per request summing to {shape[0]}, got {segments}")
        parts = []
        for g, rows, guided in zip(self.generators, segments, self.guided, strict=True):
            parts.append(torch.randn((rows, *shape[1:]), generator=g, device=g.device, dtype=dtype))
            if guided and not self.first:
                torch.randn((rows, *shape[1:]), generator=g, device=g.device, dtype=dtype)
        self.first = False
        return torch.cat(parts).to(device)

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        raise ValueError("StepNoise draws no orders (a state's order is drawn by `start`)")


class MixedGuidance:
    """A denoiser over the conditional rows of every request; the rows in `guided_rows` (indices) are
    guided, g = u + s (c - u), with unconditional conditions `uncond` [g, D] and scales `scales` [g, 1].
    Per row the arithmetic is `guidance.guided`'s: the unconditional row sees the conditional row's x."""

    def __init__(self, net: Denoiser, uncond: torch.Tensor, guided_rows: torch.Tensor,
                 scales: torch.Tensor, guided_channels: int) -> None:
        self.net, self.uncond, self.guided_rows = net, uncond, guided_rows
        self.scales, self.channels = scales, guided_channels

    def _combine(self, out: torch.Tensor, n: int) -> torch.Tensor:
        out = out.to(self.scales.dtype)  # the sampler's dtype (bf16 autocast outputs come back to it)
        if self.guided_rows.numel() == 0:
            return out
        cond_out, un = out[:n], out[n:]
        c = self.channels
        eps = cond_out[self.guided_rows, :c]
        g = un[:, :c] + self.scales * (eps - un[:, :c])
        result = cond_out.clone()
        result[self.guided_rows, :c] = g
        return result

    def bind(self, c: torch.Tensor, per_row_time: bool = False, times: Sequence[torch.Tensor] = ()) -> StepDenoiser:
        inner = bind_rows(self.net, torch.cat([c, self.uncond]), None, 0, per_row_time, times)
        n = c.shape[0]
        if self.guided_rows.numel() == n:  # every row guided (rows in order): the same arithmetic, fewer ops
            def every_row(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                out = inner(torch.cat([x, x]), t).to(self.scales.dtype)
                cond_out, un = out[:n], out[n:]
                if out.shape[1] != self.channels:
                    return self._combine(out, n)
                return un + self.scales * (cond_out - un)

            return every_row

        def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self._combine(inner(torch.cat([x, x[self.guided_rows]]), t), n)

        return step

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.bind(c)(x, t[:1])


def _class_rows(model: DJEPA, states: Sequence[ARState]) -> torch.Tensor:
    """Each request's class vector [n, D] (the null class for unconditional ones), in one lookup."""
    labels = [s.label for s in states]
    if all(label is not None for label in labels):
        return model.class_vectors(torch.tensor(labels, device=model.fake_latent.device))
    rows = [model.null_vectors(1) if s.label is None
            else model.class_vectors(torch.tensor([s.label], device=model.fake_latent.device)) for s in states]
    return torch.cat(rows)


def _plans(states: Sequence[ARState], length: int) -> tuple[torch.Tensor, torch.Tensor, list[object]]:
    """What each request reveals at this step (as `sample_tokens`): (mask_next [n, L], to_pred [n, L] bool,
    guidance scale per request: None when unguided). One mask computation for all requests; requests at the
    same step of the same schedule share one scale."""
    n = len(states)
    masks = torch.stack([s.mask for s in states]).bool()
    remaining = masks.sum(dim=1).tolist()
    mask_lens: list[int] = []
    scales: list[object] = []
    scale_cache: dict[tuple[object, ...], object] = {}
    for i, s in enumerate(states):
        mask_len = mask_len_at(s.step, s.settings.num_steps, length, int(remaining[i]))
        mask_lens.append(mask_len)
        if s.guided:
            key = (s.settings.cfg_schedule, s.settings.cfg_scale, mask_len)
            if key not in scale_cache:
                scale_cache[key] = cfg_scale_at(s.settings.cfg_schedule, s.settings.cfg_scale, length, mask_len)
            scales.append(scale_cache[key])
        else:
            scales.append(None)
    # a position stays masked iff its rank in the order is below the mask_len (as `mask_from_orders`)
    orders = torch.stack([s.orders for s in states])
    ranks = torch.empty_like(orders).scatter_(
        1, orders, torch.arange(length, device=orders.device).expand(n, length))
    mask_next = (ranks < torch.tensor(mask_lens, device=orders.device)[:, None]).to(states[0].mask.dtype)
    last = torch.tensor([s.step >= s.settings.num_steps - 1 for s in states], device=masks.device)
    to_pred = torch.where(last[:, None], masks, torch.logical_xor(masks, mask_next.bool()))
    return mask_next, to_pred, scales


@torch.no_grad()
def advance(model: DJEPA, states: Sequence[ARState],
            samplers: dict[tuple[object, ...], HeadSampler] | None = None,
            max_buckets: int = MAX_BUCKETS) -> list[ARState]:
    """One AR step for every state (none may be done), in one backbone forward; the next states, in order.

    Rows that all show the same number of tokens (requests in lockstep: the common case at saturation) take
    the dense `encode` / `predict` of `sample_tokens`; rows at different steps the ragged ones.
    `samplers`: a cache of head samplers by `head_key` (filled here), to build each one once; `max_buckets`:
    attention calls per encoder layer for rows at different steps (models/ragged.py)."""
    if not states:
        return []
    if any(s.done for s in states):
        raise ValueError("advance got a finished state")
    cfg = model.config
    length = cfg.seq_len
    n = len(states)
    guided = [i for i, s in enumerate(states) if s.guided]
    rows = [*states, *(states[i] for i in guided)]
    tokens = torch.stack([s.tokens for s in rows])
    mask = torch.stack([s.mask for s in rows])
    class_vec = torch.cat([_class_rows(model, states), model.null_vectors(len(guided))])
    mask_next, to_pred, scales = _plans(states, length)
    visible = mask.sum(dim=1)
    query = torch.cat([to_pred, to_pred[guided]])  # the slots the head reads, per row
    exact = any(s.settings.reference_arithmetic for s in states)  # the full predictor pass, op for op
    if bool((visible == visible[0]).all()):  # same count everywhere: no padding needed
        enc = model.encode(tokens, mask, class_vec)
        zq = model.predict(enc, mask)[query] if exact else model.predict_at(enc, mask, query)
    else:
        enc, positions, valid = model.encode_ragged(tokens, mask, class_vec, max_buckets)
        zq = (model.predict_ragged(enc, positions, valid)[query] if exact
              else model.predict_ragged_at(enc, positions, valid, query))
    # z at the slots the head reads: [each request's cond row; each guided request's uncond row], every row's slots in
    # position order; the head's state stays in the tokens' dtype also where autocast runs the network in bf16
    zq = zq.to(tokens.dtype)
    counts_all = [int(c) for c in to_pred.sum(dim=1).tolist()]
    cond_total = sum(counts_all)
    uncond_row = {i: n + k for k, i in enumerate(guided)}
    row_parts: list[torch.Tensor] = []  # zq per row, split when the requests need more than one head call

    new_rows: dict[int, torch.Tensor] = {}
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, s in enumerate(states):
        groups.setdefault(head_key(s.settings), []).append(i)
    cache = samplers if samplers is not None else {}
    for key, members in groups.items():
        if key not in cache:
            cache[key] = make_head_sampler(model, states[members[0]].settings)
        counts = [counts_all[i] for i in members]
        g_members = [i for i in members if states[i].guided]
        if len(members) == n:  # one head call for every request: its rows are zq as it is
            cond, uncond = zq[:cond_total], zq[cond_total:]
        else:
            if not row_parts:
                row_parts = list(zq.split(counts_all + [counts_all[i] for i in guided]))
            cond = torch.cat([row_parts[i] for i in members])
            uncond = torch.cat([row_parts[uncond_row[i]] for i in g_members]) if g_members else cond[:0]
        dev = cond.device
        owner = torch.arange(len(members)).repeat_interleave(torch.tensor(counts))  # member of each cond row
        guided_member = torch.tensor([states[i].guided for i in members])
        guided_idx = guided_member[owner].nonzero().flatten().to(dev)
        if g_members:
            # the scales are float32 (linear schedule) or Python floats: exact through a float list
            member_scale = torch.tensor([float(cast(float, scales[i])) if states[i].guided else 1.0 for i in members],
                                        dtype=torch.float32)
            scale_rows = member_scale[owner][guided_idx.cpu()].reshape(-1, 1).to(dev, cond.dtype)
        else:
            scale_rows = cond.new_zeros(0, 1)
        net = MixedGuidance(model.head, uncond, guided_idx, scale_rows, cfg.token_dim)
        noise = StepNoise([states[i].generator for i in members], [states[i].guided for i in members])
        temps = torch.tensor([states[i].settings.temperature for i in members], dtype=cond.dtype)
        temperature = temps[owner].reshape(-1, 1).to(dev)
        out = cache[key](net, cond, noise, temperature, None, counts)
        if len(members) == n:
            generated = out
        else:
            for i, part in zip(members, out.split(counts), strict=True):
                new_rows[i] = part
    if len(groups) > 1:
        generated = torch.cat([new_rows[i] for i in range(n)])

    new_tokens = tokens[:n].clone()
    new_tokens[to_pred] = generated.to(new_tokens.dtype)
    left = mask_next.sum(dim=1).tolist()
    result = []
    for i, s in enumerate(states):
        step = s.step + 1
        done = step >= s.settings.num_steps or int(left[i]) == 0
        result.append(dataclasses.replace(s, mask=mask_next[i], tokens=new_tokens[i], step=step, done=done))
    return result


def run_alone(model: DJEPA, label: int | None, seed: int, settings: SampleSettings) -> torch.Tensor:
    """One request from start to end through `advance` alone: tokens [L, C]."""
    state = start(model, label, seed, settings)
    while not state.done:
        state = advance(model, [state])[0]
    return state.tokens
