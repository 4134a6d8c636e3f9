from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from djepa_core.cli import main
from djepa_core.data.imagefolder import ImageFolder
from djepa_core.data.latent_cache import LatentCache
from djepa_core.tokenizers.factory import build_tokenizer
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.trainers.config import load_config
from djepa_core.trainers.loop import Trainer

from .test_data import make_image_folder

# a tiny VAE (base channels 32) on 32x32 RGB: a 2x2 grid of 16-dim latents, one latent pixel per token
RUN_YAML = """
preset: djepa-tiny
device: cpu
generator:
  model: {grid: [2, 2], token_dim: 16}
  tokenizer: {kind: vae, image_size: 32, channels: 3, patch_size: 16, scale: 0.2325, vae: {ch: 32}}
  sampling: {num_steps: 2, head_steps: 4}
data: {kind: latents, flip: true}
optim: {lr: 0.001}
loop: {steps: 2, batch_size: 4, threads: 1}
checkpoint: {every: 0, keep: 1}
log: {every: 1, progress: false, sample_per_class: 1, sample_classes: 2}
"""


def test_cache_latents_then_train(tmp_path: Path) -> None:
    images = make_image_folder(tmp_path / "images", per_class=3)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(RUN_YAML)
    cache = tmp_path / "cache"
    torch.manual_seed(0)  # the untrained VAE's weights, rebuilt below to check the cached values
    assert main(["cache-latents", str(run_yaml), "--images", str(images), "--out", str(cache),
                 "--allow-random-vae", "--batch-size", "4"]) == 0
    lc = LatentCache(cache)
    assert len(lc) == 6 and lc.classes == ["cat", "dog"] and lc.moments.shape == (6, 32, 2, 2)
    # the cache holds the moments of the image and of its flip, from the same (seeded) VAE
    cfg = load_config(run_yaml, [f"data.path={cache}", f"run_dir={tmp_path / 'run'}"])
    torch.manual_seed(0)
    tok = build_tokenizer(cfg.generator_config().tokenizer).eval()
    assert isinstance(tok, VAETokenizer)
    ds = ImageFolder(images, 32)
    x, y = lc[(5, True)]
    assert y == 1 and x.shape == (32, 2, 2)
    expected = tok.encode_moments(ds.load(5, flip=True).unsqueeze(0))[0]
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(lc[(5, False)][0], tok.encode_moments(ds.load(5).unsqueeze(0))[0])
    assert np.isfinite(lc.moments).all() and not np.allclose(lc.moments, lc.moments_flip)
    trainer = Trainer(cfg)
    assert trainer.source.kind == "moments"
    trainer.train()
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert tok.token_dim == 16


def test_cache_refuses_patch_tokenizer(tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("preset: djepa-tiny\n")
    images = make_image_folder(tmp_path / "images", per_class=1)
    assert main(["cache-latents", str(run_yaml), "--images", str(images), "--out", str(tmp_path / "c")]) == 2
