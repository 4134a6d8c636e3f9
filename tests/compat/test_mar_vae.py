"""Importing MAR's VAE files: .pth containers with pickled args, prefixes, safetensors, refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from djepa_core.compat.mar_vae import load_mar_vae
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig

CONFIG = VAEConfig(embed_dim=4, ch=32, ch_mult=(1, 2), num_res_blocks=1, resolution=16,
                   encoder_attn_resolutions=(8,))


def random_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    vae = AutoencoderKL(CONFIG)
    with torch.no_grad():
        for p in vae.parameters():
            p.normal_()
    return vae


def save_pth(path: Path, state: dict[str, torch.Tensor]) -> Path:
    args = argparse.Namespace(vae_path=str(path), vae_embed_dim=16, lr=1e-4, use_cached=False, seed=1)
    torch.save({"model": state, "args": args}, path)
    return path


def assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pth_with_args_round_trip(tmp_path: Path) -> None:
    vae = random_vae()
    path = save_pth(tmp_path / "kl16.ckpt", vae.state_dict())
    loaded = load_mar_vae(path, CONFIG)
    assert_same(vae, loaded)
    assert not loaded.training
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_moments(x), vae.encode_moments(x))


def test_flat_state_dict_and_prefix_stripped(tmp_path: Path) -> None:
    vae = random_vae()
    state = {f"_orig_mod.{k}": v for k, v in vae.state_dict().items()}
    torch.save(state, tmp_path / "flat.pth")
    assert_same(vae, load_mar_vae(tmp_path / "flat.pth", CONFIG))
    wrapped = {f"module._orig_mod.{k}": v for k, v in vae.state_dict().items()}
    path = save_pth(tmp_path / "wrapped.pth", wrapped)
    assert_same(vae, load_mar_vae(path, CONFIG))


def test_safetensors(tmp_path: Path) -> None:
    vae = random_vae()
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(tmp_path / "vae.safetensors"))
    assert_same(vae, load_mar_vae(tmp_path / "vae.safetensors", CONFIG))


def test_renamed_key_refused(tmp_path: Path) -> None:
    state = random_vae().state_dict()
    state["decoder.mid.attn_1.proj.weight"] = state.pop("decoder.mid.attn_1.proj_out.weight")
    path = save_pth(tmp_path / "renamed.pth", state)
    with pytest.raises(ValueError) as info:
        load_mar_vae(path, CONFIG)
    msg = str(info.value)
    assert "1 missing: decoder.mid.attn_1.proj_out.weight" in msg
    assert "1 unexpected: decoder.mid.attn_1.proj.weight" in msg


def test_wrong_shape_refused(tmp_path: Path) -> None:
    state = random_vae().state_dict()
    state["quant_conv.weight"] = torch.zeros(8, 8, 3, 3)
    path = save_pth(tmp_path / "shape.pth", state)
    with pytest.raises(ValueError, match=r"mis-shaped: quant_conv\.weight \(file \(8, 8, 3, 3\) vs model"):
        load_mar_vae(path, CONFIG)


def test_default_config_refuses_small_file_with_counts(tmp_path: Path) -> None:
    path = save_pth(tmp_path / "small.pth", random_vae().state_dict())
    with pytest.raises(ValueError, match=r"\d+ missing: .*\(\+\d+ more\)"):
        load_mar_vae(path)
