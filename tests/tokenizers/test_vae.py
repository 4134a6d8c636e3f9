"""KL-16 VAE: manifest equality, tiny-vae parity, tokenizer shapes and uint8 mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from djepa_core.compat.vae_parity import config_from_shapes, run_vae_parity
from djepa_core.tokenizers.grid import unpatchify
from djepa_core.tokenizers.image_vae import VAETokenizer, to_uint8
from djepa_core.tokenizers.vae import AutoencoderKL, DiagonalGaussian, VAEConfig
from tests.conftest import REQUIRE_FIXTURES, official_fixtures_path

FIXTURES = official_fixtures_path()
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir() and not REQUIRE_FIXTURES,
                                    reason=f"fixtures not found at {FIXTURES}")


def small_config() -> VAEConfig:
    # 2 levels (factor 2), attention in the encoder's last level and the decoder's first.
    return VAEConfig(embed_dim=4, ch=32, ch_mult=(1, 2), num_res_blocks=1, resolution=16,
                     encoder_attn_resolutions=(8,), decoder_attn_resolutions=(16,))


@needs_fixtures
def test_state_dict_equals_kl16_manifest() -> None:
    manifest = json.loads((FIXTURES / "manifests" / "vae_kl16.json").read_text())
    with torch.device("meta"):
        vae = AutoencoderKL()
    ours = [(k, list(v.shape)) for k, v in vae.state_dict().items()]
    expected = [(t["key"], list(t["shape"])) for t in manifest["tensors"]]
    assert ours == expected
    total = sum(v.numel() for v in vae.state_dict().values())
    assert total == manifest["total_parameters"] == 66_456_019
    assert sum(p.numel() for p in vae.parameters()) == 66_456_019
    assert VAEConfig().to_dict() == {**manifest["config"], "in_channels": 3, "out_channels": 3}


@needs_fixtures
def test_config_inferred_from_manifest_is_default() -> None:
    manifest = json.loads((FIXTURES / "manifests" / "vae_kl16.json").read_text())
    shapes = {t["key"]: t["shape"] for t in manifest["tensors"]}
    assert config_from_shapes(shapes) == VAEConfig()


@needs_fixtures
@pytest.mark.parametrize("num_threads", [1, None])
def test_tiny_vae_parity(num_threads: int | None) -> None:
    before = torch.get_num_threads()
    results = run_vae_parity(FIXTURES / "tiny-vae", num_threads=num_threads)
    assert torch.get_num_threads() == before
    golden = json.loads((FIXTURES / "tiny-vae" / "golden.json").read_text())
    outputs = [k for k in golden["tensors"] if k.startswith("outputs.")]
    assert [r.name for r in results] == outputs
    bad = [r.line() for r in results if not r.ok]
    assert not bad, "\n".join(bad)


@needs_fixtures
def test_unmapped_output_is_reported(tmp_path: Path) -> None:
    src = FIXTURES / "tiny-vae"
    golden = json.loads((src / "golden.json").read_text())
    golden["tensors"]["outputs.something_new"] = {"shape": [2], "dtype": "float32"}
    (tmp_path / "golden.json").write_text(json.dumps(golden))
    tensors = load_file(str(src / "golden.safetensors"))
    tensors["outputs.something_new"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "golden.safetensors"))
    results = {r.name: r for r in run_vae_parity(tmp_path)}
    assert results["outputs.something_new"].error == "not recomputed"
    assert not results["outputs.something_new"].ok
    assert results["outputs.moments"].ok


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = small_config()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert VAEConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="bogus"):
        VAEConfig.from_dict({**data, "bogus": 1})


def test_diagonal_gaussian() -> None:
    moments = torch.cat([torch.randn(2, 4, 3, 3), torch.full((2, 4, 3, 3), 50.0)], dim=1)
    moments[:, 4:, 0, 0] = -100.0
    post = DiagonalGaussian(moments)
    assert post.logvar.max() == 20.0 and post.logvar.min() == -30.0
    torch.testing.assert_close(post.std, torch.exp(0.5 * post.logvar))
    assert torch.equal(post.mode(), moments[:, :4])
    a = post.sample(torch.Generator().manual_seed(3))
    b = post.sample(torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2, 4, 3, 3)


def test_tokenizer_shapes_and_grid() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(small_config())
    tok = VAETokenizer(vae, image_size=8)
    assert tok.grid == (4, 4) and tok.token_dim == 4 and tok.image_size == 8 and tok.scale == 0.2325
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    tokens = tok.encode(images, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (3, 16, 4) and tokens.dtype == torch.float32
    # sample=False gives the scaled posterior mean, token index = row * w + col
    mean_tokens = tok.encode(images, sample=False)
    mean = vae.encode(images).mean
    torch.testing.assert_close(unpatchify(mean_tokens, (4, 4)), mean * 0.2325)
    assert torch.equal(mean_tokens[:, 1 * 4 + 2], mean[:, :, 1, 2] * 0.2325)
    # cached moments reproduce encode() for the same generator
    moments = tok.encode_moments(images)
    assert moments.shape == (3, 8, 4, 4)
    again = tok.tokens_from_moments(moments, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, tokens, rtol=0, atol=0)
    out = tok.decode(tokens)
    assert out.shape == (3, 3, 8, 8)
    torch.testing.assert_close(out, vae.decode(unpatchify(tokens, (4, 4)) / 0.2325))
    tok.train()
    assert not vae.training
    with pytest.raises(ValueError):
        tok.decode(torch.zeros(1, 15, 4))
    with pytest.raises(ValueError):
        tok.encode(torch.zeros(1, 3, 16, 16))


def test_to_uint8() -> None:
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, 0.5, -0.5])
    images = x.reshape(1, 1, 1, 7).expand(2, 3, 1, 7)
    out = to_uint8(images)
    assert out.dtype == torch.uint8 and out.shape == (2, 1, 7, 3)
    # clamp((x + 1) / 2, 0, 1) * 255, rounded: 127.5 -> 128, 191.25 -> 191, 63.75 -> 64
    assert out[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255, 191, 64]
    assert torch.equal(out[1, 0, :, 2], out[0, 0, :, 0])
