"""The head bound to its condition rows: the fast path (time embedding once per step) stays within float
rounding of the reference's per-row arithmetic, and `reference_arithmetic` reproduces it bit for bit."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from djepa_core.assets import default_image_checkpoint
from djepa_core.checkpoint import load_generator
from djepa_core.heads.mlp import DenoisingMLP
from djepa_core.samplers.bound import bind_rows
from djepa_core.samplers.guidance import guided


def _net() -> DenoisingMLP:
    torch.manual_seed(0)
    net = DenoisingMLP(in_channels=8, width=64, out_channels=16, cond_dim=32, depth=3)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)  # non-zero adaLN/output layers, so every part of the net matters
    return net


@pytest.mark.parametrize("t", [torch.tensor(37), torch.tensor(0.37)], ids=["gauss-step", "flow-time"])
def test_bind_matches_forward(t: torch.Tensor) -> None:
    net = _net()
    x, c = torch.randn(10, 8), torch.randn(10, 32)
    plain = net(x, t.reshape(1).expand(10), c)
    assert torch.equal(net.bind(c, per_row_time=True)(x, t), plain)
    torch.testing.assert_close(net.bind(c)(x, t), plain, rtol=1e-5, atol=1e-5)


def test_bind_rows_guided_and_generic() -> None:
    net = _net()
    x, c = torch.randn(6, 8), torch.randn(6, 32)
    t = torch.tensor(5)
    want = guided(net, 2.5, 8)(x, t.reshape(1).expand(6), c)
    torch.testing.assert_close(bind_rows(net, c, 2.5, 8)(x, t), want, rtol=1e-5, atol=1e-5)
    # a denoiser without `bind` is wrapped as is: exactly the plain call
    generic = bind_rows(lambda a, b, d: net(a, b, d), c, 2.5, 8)
    assert torch.equal(generic(x, t), want)


def test_fast_path_matches_reference_arithmetic_on_the_embedded_model() -> None:
    path = default_image_checkpoint()
    if path is None:
        pytest.skip("this build ships no embedded image model")
    gen = load_generator(path)
    fast = gen.settings(num_steps=8)
    exact = dataclasses.replace(fast, reference_arithmetic=True)
    a = gen.generate([0, 3, 7, 9], seeds=[0, 1, 2, 3], settings=fast)
    b = gen.generate([0, 3, 7, 9], seeds=[0, 1, 2, 3], settings=exact)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_bind_with_the_loops_times_precomputes_their_conditioning() -> None:
    """Given the loop's time tensors, `bind` computes their embeddings and every adaLN modulation up front: calls
    with those very tensors equal the per-call path up to float rounding; any other time is computed per call."""
    net = _net()
    x, c = torch.randn(10, 8), torch.randn(10, 32)
    times = torch.linspace(0, 1, 6).unbind()
    plain, pre = net.bind(c), net.bind(c, times=times)
    for t in times:
        torch.testing.assert_close(pre(x, t), plain(x, t), rtol=1e-5, atol=1e-5)
    other = torch.tensor(0.37)
    assert torch.equal(pre(x, other), plain(x, other))  # not one of the loop's tensors: the per-call path
    assert torch.equal(pre(x, times[2].clone()), plain(x, times[2]))  # an equal value, another tensor: per call
    exact = net.bind(c, per_row_time=True, times=times)  # the reference's arithmetic keeps its per-row path
    assert torch.equal(exact(x, times[3]), net(x, times[3].reshape(1).expand(10), c))


def test_bind_precomputes_only_within_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from djepa_core.heads import mlp

    net = _net()
    x, c = torch.randn(10, 8), torch.randn(10, 32)
    times = torch.linspace(0, 1, 6).unbind()
    calls: list[int] = []
    embed = net.time_embed.forward

    def counted(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.numel())
        return embed(t)

    monkeypatch.setattr(net.time_embed, "forward", counted)
    net.bind(c, times=times)
    assert calls == [6]  # every loop time in one call
    calls.clear()
    monkeypatch.setattr(mlp, "PRECOMPUTE_LIMIT", 6 * 10 * net._modulation_width() - 1)
    step = net.bind(c, times=times)
    assert calls == []  # over the limit: nothing precomputed ...
    assert torch.equal(step(x, times[1]), net.bind(c)(x, times[1]))  # ... and each call computes its own
