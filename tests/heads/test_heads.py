"""Denoising heads: schedules, the adaLN MLP, Gaussian and flow-matching training losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from djepa_core.config import GeneratorConfig
from djepa_core.heads.flow import FlowMatchingLoss, flow_training_losses
from djepa_core.heads.gaussian import (
    GaussianDiffusionLoss,
    discretized_gaussian_log_likelihood,
    gaussian_training_losses,
    masked_mean,
    normal_kl,
    p_mean_variance,
    q_posterior,
    q_sample,
)
from djepa_core.heads.head import DenoisingHead
from djepa_core.heads.mlp import DenoisingMLP, ResBlock, timestep_embedding
from djepa_core.heads.schedule import make_schedule, spaced_steps

# ---------------------------------------------------------------- schedules


def test_cosine_schedule() -> None:
    s = make_schedule(1000)
    assert s.num_steps == 1000 and s.betas.dtype == np.float64
    assert (s.betas > 0).all() and (s.betas <= 0.999).all()
    assert s.betas[-1] == 0.999  # the clip is reached at the end of the cosine schedule
    assert (np.diff(s.alphas_cumprod) < 0).all()
    assert np.array_equal(s.timestep_map, np.arange(1000))
    np.testing.assert_allclose(s.alphas_cumprod, np.cumprod(1 - s.betas))
    # abar(i) = cos^2(((i+1)/T + 0.008)/1.008 * pi/2) / cos^2(0.008/1.008 * pi/2) before the clip
    i = 10
    f = lambda tau: math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert s.alphas_cumprod[i] == pytest.approx(f((i + 1) / 1000) / f(0.0), rel=1e-12)
    assert make_schedule(1000) is s  # cached


def test_respaced_schedule() -> None:
    base = make_schedule(1000)
    gen = base.respaced(100)
    tm = gen.timestep_map.tolist()
    assert len(tm) == 100 == gen.num_steps
    assert tm[:7] == [0, 10, 20, 30, 40, 50, 61]
    assert tm[-2:] == [989, 999]
    assert tm == sorted(set(tm))
    # respaced alphas_cumprod are the original ones at the kept steps
    np.testing.assert_allclose(gen.alphas_cumprod, base.alphas_cumprod[tm], rtol=1e-10)
    assert (gen.betas > 0).all() and (gen.betas < 1).all()
    assert make_schedule(1000, respace=100).timestep_map.tolist() == tm
    # the network sees original steps
    t = torch.tensor([0, 6, 99])
    assert gen.original_steps(t).tolist() == [0, 61, 999]


def test_spaced_steps_edge_cases() -> None:
    assert spaced_steps(1000, 1) == [0]
    assert spaced_steps(10, 10) == list(range(10))
    assert spaced_steps(10, 2) == [0, 9]
    assert spaced_steps(1, 1) == [0]
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match="respace"):
            spaced_steps(10, bad)
    with pytest.raises(ValueError, match="noise schedule"):
        make_schedule(10, "quadratic")


def test_gather_rounds_to_float32_and_broadcasts() -> None:
    s = make_schedule(1000)
    t = torch.tensor([0, 500, 999])
    like = torch.zeros(3, 4, 5)
    got = s.gather("betas", t, like)
    assert got.shape == (3, 1, 1) and got.dtype == torch.float32
    assert got.flatten().tolist() == torch.tensor(s.betas[[0, 500, 999]], dtype=torch.float32).tolist()


# ---------------------------------------------------------------- MLP


def test_timestep_embedding() -> None:
    t = torch.tensor([0.0, 1.0, 250.0])
    emb = timestep_embedding(t, 256)
    assert emb.shape == (3, 256)
    assert torch.equal(emb[0, :128], torch.ones(128)) and torch.equal(emb[0, 128:], torch.zeros(128))
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    torch.testing.assert_close(emb[2, :128], torch.cos(250.0 * freqs))
    torch.testing.assert_close(emb[2, 128:], torch.sin(250.0 * freqs))
    assert timestep_embedding(t, 7).shape == (3, 7)


def test_mlp_starts_at_zero_output() -> None:
    torch.manual_seed(0)
    net = DenoisingMLP(in_channels=16, width=32, out_channels=32, cond_dim=24, depth=3)
    x, t, c = torch.randn(5, 16), torch.randint(0, 1000, (5,)), torch.randn(5, 24)
    out = net(x, t, c)
    assert out.shape == (5, 32)
    assert torch.equal(out, torch.zeros(5, 32))
    for block in net.res_blocks:
        assert isinstance(block, ResBlock)
        modulation = block.adaLN_modulation[-1]
        assert isinstance(modulation, torch.nn.Linear) and not modulation.weight.any()
    assert not net.final_layer.linear.weight.any()
    # the condition itself is not zero: only the modulations and output start at zero
    assert net.condition(t, c).abs().sum() > 0
    with torch.no_grad():
        net.final_layer.linear.weight.normal_()
    assert net(x, t, c).abs().sum() > 0


def test_head_output_channels(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    assert DenoisingHead(cfg).net.out_channels == 2 * cfg.token_dim
    assert DenoisingHead(cfg.replace(head="flow")).net.out_channels == cfg.token_dim


# ---------------------------------------------------------------- Gaussian loss


def _fixed_net(out: torch.Tensor):  # type: ignore[no-untyped-def]
    def net(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return out

    return net


def test_gaussian_losses_vb_uses_decoder_nll_at_t0() -> None:
    s = make_schedule(1000)
    g = torch.Generator().manual_seed(0)
    n, c = 6, 4
    x_start = torch.rand(n, c, generator=g) * 1.6 - 0.8
    noise = torch.randn(n, c, generator=g)
    out = torch.cat([torch.randn(n, c, generator=g), torch.rand(n, c, generator=g) * 2 - 1], dim=1)
    t = torch.tensor([0, 0, 1, 10, 500, 999])
    terms = gaussian_training_losses(_fixed_net(out), s, x_start, t, torch.zeros(n, 3), noise)
    for v in (terms.mse, terms.vb, terms.loss):
        assert v.shape == (n,) and torch.isfinite(v).all()
    torch.testing.assert_close(terms.loss, terms.mse + terms.vb)
    torch.testing.assert_close(terms.mse, ((noise - out[:, :c]) ** 2).mean(dim=1))

    x_t = q_sample(s, x_start, t, noise)
    pred = p_mean_variance(s, out, x_t, t)
    true_mean, true_logvar = q_posterior(s, x_start, x_t, t)
    kl = normal_kl(true_mean, true_logvar, pred.mean, pred.log_variance).mean(dim=1) / math.log(2)
    nll = -discretized_gaussian_log_likelihood(x_start, pred.mean, 0.5 * pred.log_variance).mean(dim=1) / math.log(2)
    torch.testing.assert_close(terms.vb[:2], nll[:2])
    torch.testing.assert_close(terms.vb[2:], kl[2:])
    assert not torch.allclose(terms.vb[:2], kl[:2])  # the KL path would give another value at t = 0
    assert (terms.vb >= -1e-6).all()


def test_gaussian_vb_trains_only_the_variance() -> None:
    s = make_schedule(1000)
    g = torch.Generator().manual_seed(1)
    n, c = 4, 3
    out = torch.cat([torch.randn(n, c, generator=g), torch.zeros(n, c)], dim=1).requires_grad_(True)
    x_start, noise = torch.randn(n, c, generator=g), torch.randn(n, c, generator=g)
    t = torch.tensor([5, 50, 500, 900])
    terms = gaussian_training_losses(_fixed_net(out), s, x_start, t, torch.zeros(n, 1), noise)
    (grad,) = torch.autograd.grad(terms.vb.sum(), out)
    assert not grad[:, :c].any() and grad[:, c:].abs().sum() > 0


def test_gaussian_diffusion_loss_draws() -> None:
    loss = GaussianDiffusionLoss(1000)
    torch.manual_seed(0)
    net = DenoisingMLP(4, 16, 8, 5, 1)
    target, cond = torch.randn(10, 4), torch.randn(10, 5)
    a = loss(net, target, cond, None, torch.Generator().manual_seed(2))
    b = loss(net, target, cond, None, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and a.dim() == 0 and torch.isfinite(a)
    row_mask = torch.tensor([1.0] * 5 + [0.0] * 5)
    m = loss(net, target, cond, row_mask, torch.Generator().manual_seed(2))
    assert torch.isfinite(m)


def test_masked_mean() -> None:
    per_row = torch.tensor([1.0, 2.0, 3.0, 10.0])
    assert float(masked_mean(per_row, None)) == 4.0
    assert float(masked_mean(per_row, torch.tensor([1.0, 1.0, 1.0, 0.0]))) == 2.0


# ---------------------------------------------------------------- flow loss


def test_flow_loss_zero_for_exact_velocity() -> None:
    g = torch.Generator().manual_seed(0)
    x1, x0 = torch.randn(7, 16, generator=g), torch.randn(7, 16, generator=g)
    t = torch.rand(7, generator=g)
    seen = {}

    def exact(x_t: torch.Tensor, tt: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen["x_t"], seen["t"] = x_t, tt
        return x1 - x0

    per_row = flow_training_losses(exact, x1, t, torch.zeros(7, 2), x0)
    assert per_row.shape == (7,)
    torch.testing.assert_close(per_row, torch.zeros(7), atol=0, rtol=0)
    torch.testing.assert_close(seen["x_t"], t[:, None] * x1 + (1 - t[:, None]) * x0)
    assert torch.equal(seen["t"], t)
    zero = flow_training_losses(lambda a, b, c: torch.zeros_like(a), x1, t, torch.zeros(7, 2), x0)
    torch.testing.assert_close(zero, ((x1 - x0) ** 2).mean(dim=1))


def test_flow_matching_loss_draws() -> None:
    torch.manual_seed(0)
    net = DenoisingMLP(4, 16, 4, 5, 1)
    with torch.no_grad():
        net.final_layer.linear.weight.normal_()
    target, cond = torch.randn(8, 4), torch.randn(8, 5)
    loss = FlowMatchingLoss()
    a = loss(net, target, cond, None, torch.Generator().manual_seed(0))
    b = loss(net, target, cond, None, torch.Generator().manual_seed(0))
    c = loss(net, target, cond, None, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c) and a > 0


def test_reverse_model_times_are_the_original_steps_last_first() -> None:
    from djepa_core.heads.schedule import make_schedule

    schedule = make_schedule(1000, "cosine", respace=25)
    got = schedule.reverse_model_times("cpu")
    want = [schedule.original_steps(torch.tensor([i])) for i in reversed(range(schedule.num_steps))]
    assert len(got) == 25 and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert int(got[0]) > int(got[-1]) == 0
