"""The D-JEPA network: shapes, training masks, losses and gradients, a tiny overfit, EMA."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch
from torch import nn

from djepa_core.config import GeneratorConfig, ModelConfig
from djepa_core.models.djepa import DJEPA, Batch
from djepa_core.models.ema import EMA
from djepa_core.models.masking import mask_from_orders, random_orders, training_mask, truncated_normal_ratio


def _model(cfg: ModelConfig, seed: int = 0) -> DJEPA:
    torch.manual_seed(seed)
    return DJEPA(cfg)


def _batch(cfg: ModelConfig, b: int = 4, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, cfg.seq_len, cfg.token_dim, generator=g)
    labels = torch.randint(0, cfg.num_classes, (b,), generator=g)
    return Batch(tokens, labels)


# ---------------------------------------------------------------- shapes


def test_encode_predict_shapes(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    model = _model(cfg).eval()
    batch = _batch(cfg, b=3)
    length = cfg.seq_len
    mask = training_mask(3, length, generator=torch.Generator().manual_seed(4))
    num_masked = int(mask[0].sum())
    assert 0 < num_masked <= length
    e = model.class_vectors(batch.labels)
    assert e.shape == (3, cfg.encoder_dim)
    enc = model.encode(batch.tokens, mask, e)
    assert enc.shape == (3, cfg.buffer_size + length - num_masked, cfg.encoder_dim)
    z = model.predict(enc, mask)
    assert z.shape == (3, length, cfg.decoder_dim)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(model(batch.tokens, mask, e), z)
    target = model.target_features(batch.tokens, batch.labels)
    assert target.shape == (3, length, cfg.encoder_dim)
    assert not target.requires_grad


def test_masked_tokens_do_not_influence_the_encoder(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    model = _model(cfg).eval()
    batch = _batch(cfg, b=2)
    mask = training_mask(2, cfg.seq_len, generator=torch.Generator().manual_seed(1))
    e = model.class_vectors(batch.labels)
    changed = batch.tokens + 5.0 * mask[..., None]  # only masked positions change
    torch.testing.assert_close(model(batch.tokens, mask, e), model(changed, mask, e))
    visible_changed = batch.tokens + 5.0 * (1 - mask[..., None])
    assert not torch.allclose(model(batch.tokens, mask, e), model(visible_changed, mask, e))


# ---------------------------------------------------------------- masking


def test_truncated_normal_ratio_range_and_mean() -> None:
    g = torch.Generator().manual_seed(0)
    draws = [truncated_normal_ratio(1.0, 0.25, 0.7, 1.0, g) for _ in range(3000)]
    assert all(0.7 <= r <= 1.0 for r in draws)
    mean = statistics.fmean(draws)
    # mean of N(1, 0.25^2) truncated to [0.7, 1]: 1 - 0.25 (phi(0) - phi(-1.2)) / (Phi(0) - Phi(-1.2))
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    expected = 1 - 0.25 * (phi(0) - phi(-1.2)) / (cdf(0) - cdf(-1.2))
    assert mean < 1.0
    assert abs(mean - expected) < 0.01, (mean, expected)
    assert min(draws) < 0.72 and max(draws) > 0.99
    # degenerate settings clamp the mean
    assert truncated_normal_ratio(1.0, 0.0, 0.7, 1.0) == 1.0
    assert truncated_normal_ratio(0.5, 0.0, 0.7, 1.0) == 0.7


@pytest.mark.parametrize("seed", range(6))
def test_training_mask_counts(seed: int) -> None:
    length = 16
    r = truncated_normal_ratio(1.0, 0.25, 0.7, 1.0, torch.Generator().manual_seed(seed))
    mask = training_mask(5, length, generator=torch.Generator().manual_seed(seed))
    assert mask.shape == (5, length) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.sum(dim=1).tolist() == [float(math.ceil(length * r))] * 5


def test_orders_are_permutations_and_masks_follow_them() -> None:
    orders = random_orders(4, 10, torch.Generator().manual_seed(0))
    assert torch.equal(orders.sort(dim=1).values, torch.arange(10).expand(4, 10))
    mask = mask_from_orders(orders, 3)
    for row in range(4):
        assert mask[row, orders[row, :3]].tolist() == [1.0] * 3
        assert mask[row].sum() == 3


# ---------------------------------------------------------------- losses and gradients


def _grad_norm(params: list[nn.Parameter]) -> float:
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


def test_loss_total_and_gradients(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    assert cfg.diffusion_weight == 1.0 and cfg.jepa_weight == 1.0
    model = _model(cfg).train()
    target = EMA(model, decay=0.9999)
    batch = _batch(cfg)
    assert isinstance(target.model, DJEPA)
    out = model.loss(batch, target=target.model, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.total) and out.total.dim() == 0
    assert out.denoise > 0 and out.jepa > 0
    torch.testing.assert_close(out.total, out.denoise + out.jepa)
    assert 0.7 <= out.mask_ratio <= 1.0
    out.total.backward()
    groups = {
        "encoder": list(model.encoder_blocks.parameters()) + list(model.z_proj.parameters()),
        "predictor": list(model.decoder_blocks.parameters()) + list(model.decoder_embed.parameters()),
        "head": list(model.diffloss.parameters()),
        "jepa": list(model.jepaloss.parameters()) if model.jepaloss is not None else [],
    }
    for name, params in groups.items():
        assert params, name
        assert _grad_norm(params) > 0, f"no gradient reaches the {name}"
    assert all(p.grad is None for p in target.model.parameters())
    assert not any(p.requires_grad for p in target.model.parameters())


def test_loss_is_reproducible_with_a_generator(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    model = _model(cfg).train()
    batch = _batch(cfg)
    a = model.loss(batch, generator=torch.Generator().manual_seed(3))
    b = model.loss(batch, generator=torch.Generator().manual_seed(3))
    # dropout draws from the global RNG: compare in eval mode for exact reproducibility
    model.eval()
    c = model.loss(batch, generator=torch.Generator().manual_seed(3))
    d = model.loss(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c.total, d.total)
    assert a.mask_ratio == b.mask_ratio == c.mask_ratio


def test_loss_without_jepa(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model.replace(jepa_weight=0.0)
    model = _model(cfg)
    assert model.jepaloss is None
    assert not any(k.startswith("jepaloss.") for k in model.state_dict())
    out = model.loss(_batch(cfg), generator=torch.Generator().manual_seed(0))
    assert float(out.jepa) == 0.0
    torch.testing.assert_close(out.total, out.denoise)


def test_loss_refuses_wrong_token_shape(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    model = _model(cfg)
    with pytest.raises(ValueError, match="do not match"):
        model.loss(Batch(torch.zeros(2, cfg.seq_len + 1, cfg.token_dim), torch.zeros(2, dtype=torch.long)))


def test_label_ids_out_of_range(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model
    model = _model(cfg)
    for bad in ([cfg.num_classes], [-1], [0, cfg.num_classes + 3]):
        with pytest.raises(ValueError, match="class ids"):
            model.class_vectors(torch.tensor(bad))
    batch = _batch(cfg, b=2)
    with pytest.raises(ValueError, match="class ids"):
        model.loss(Batch(batch.tokens, torch.tensor([0, cfg.num_classes])))
    with pytest.raises(ValueError):
        model.class_vectors(None)
    assert torch.equal(model.class_vectors(None, 3), model.fake_latent.expand(3, -1))


def test_qk_norm_off(tiny_config: GeneratorConfig) -> None:
    cfg = tiny_config.model.replace(qk_norm=False)
    model = _model(cfg).eval()
    keys = list(model.state_dict())
    assert not any("q_norm" in k or "k_norm" in k for k in keys)
    assert any("q_norm" in k for k in _model(tiny_config.model).state_dict())
    batch = _batch(cfg, b=2)
    mask = training_mask(2, cfg.seq_len, generator=torch.Generator().manual_seed(0))
    z = model(batch.tokens, mask, model.class_vectors(batch.labels))
    assert z.shape == (2, cfg.seq_len, cfg.decoder_dim) and torch.isfinite(z).all()


# ---------------------------------------------------------------- tiny overfit


@pytest.mark.parametrize(("head", "steps"), [("gauss", 80), ("flow", 200)])
def test_tiny_overfit(tiny_config: GeneratorConfig, one_thread: None, head: str, steps: int) -> None:
    cfg = tiny_config.model.replace(head=head)
    model = _model(cfg, seed=0).train()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(8, cfg.seq_len, cfg.token_dim, generator=g)
    labels = torch.arange(8) % cfg.num_classes
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        out = model.loss(Batch(tokens, labels), generator=draws)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
    assert all(math.isfinite(x) for x in losses)
    first, last = statistics.fmean(losses[:10]), statistics.fmean(losses[-10:])
    assert last < 0.7 * first, (head, first, last)


# ---------------------------------------------------------------- EMA


def test_ema_update_moves_toward_online() -> None:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = EMA(online, decay=0.9)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    online.train()(torch.randn(8, 4))  # changes the BatchNorm running stats (buffers)
    ema.update(online)
    for name, p in online.named_parameters():
        expected = before[name] + 0.1 * (p.detach() - before[name])
        torch.testing.assert_close(ema.state_dict()[name], expected)
    for name, b in online.named_buffers():
        assert torch.equal(ema.state_dict()[name], b)
    assert not any(p.requires_grad for p in ema.model.parameters())
    assert not ema.model.training


def test_ema_decay_zero_copies_and_one_keeps(tiny_config: GeneratorConfig) -> None:
    online = _model(tiny_config.model, seed=0)
    ema = EMA(online, decay=0.0)
    other = _model(tiny_config.model, seed=1)
    ema.update(other)
    for (k, a), b in zip(ema.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    frozen = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.update(online, decay=1.0)
    assert all(torch.equal(frozen[k], v) for k, v in ema.state_dict().items())
    # the EMA copy is independent of the online weights
    with torch.no_grad():
        online.fake_latent.add_(1.0)
    assert isinstance(ema.model, DJEPA)
    assert not torch.equal(ema.model.fake_latent, online.fake_latent)
    with pytest.raises(ValueError):
        EMA(online, decay=1.5)
    copy.deepcopy(ema.model)  # stays a plain module
