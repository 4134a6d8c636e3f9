"""DDIM for the Gaussian head: exact on an oracle denoiser, wired into the masked-AR loop, seeded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from djepa_core.config import GeneratorConfig
from djepa_core.heads.schedule import make_schedule
from djepa_core.pipeline import ImageGenerator
from djepa_core.samplers.ddim import ddim_sample
from djepa_core.samplers.masked_ar import SampleSettings
from djepa_core.samplers.noise import GeneratorNoise


def _oracle(target: torch.Tensor):  # type: ignore[no-untyped-def]
    """The exact eps for data that is always `target`: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    full = make_schedule(1000, "cosine")
    ab = torch.from_numpy(full.alphas_cumprod).float()

    def net(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = ab[t.long()].reshape(-1, 1).expand(x.shape[0], 1)
        eps = (x - a.sqrt() * target) / (1 - a).sqrt()
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)  # + the (unused) variance channels

    return net


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_recovers_the_data_of_an_oracle(eta: float) -> None:
    target = torch.tensor([0.5, -1.0, 2.0])
    schedule = make_schedule(1000, "cosine", respace=10)
    x = ddim_sample(_oracle(target), torch.zeros(4, 2), schedule, GeneratorNoise(seed=0), 3, eta=eta)
    torch.testing.assert_close(x, target.expand(4, 3), rtol=1e-3, atol=1e-3)


def test_ddim_guided_rows_share_the_noise() -> None:
    target = torch.tensor([1.0, 0.0])
    schedule = make_schedule(1000, "cosine", respace=5)
    x = ddim_sample(_oracle(target), torch.zeros(6, 2), schedule, GeneratorNoise(seed=1), 2, cfg_scale=3.0)
    torch.testing.assert_close(x[:3], x[3:])


def test_ddim_rejects_negative_eta() -> None:
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(_oracle(torch.zeros(2)), torch.zeros(1, 2), make_schedule(1000, respace=4),
                    GeneratorNoise(seed=0), 2, eta=-1.0)
    with pytest.raises(ValueError, match="diffusion_method"):
        SampleSettings(diffusion_method="euler")  # type: ignore[arg-type]


def test_masked_ar_with_ddim_is_seeded_and_finite(tiny_config: GeneratorConfig) -> None:
    gen = ImageGenerator.from_config(tiny_config)
    settings = dataclasses.replace(gen.settings(num_steps=4, head_steps=8, cfg_scale=2.0), diffusion_method="ddim")
    a = gen.generate([0, 1], seeds=[3, 4], settings=settings)
    b = gen.generate([0, 1], seeds=[3, 4], settings=settings)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    ddpm = gen.generate([0, 1], seeds=[3, 4], settings=dataclasses.replace(settings, diffusion_method="ddpm"))
    assert not torch.equal(a, ddpm)
