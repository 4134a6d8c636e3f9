"""The embedded default image model ships in the package, in our format, and generates."""

from __future__ import annotations

import json

import torch

from djepa_core.assets import ASSETS, default_image_checkpoint
from djepa_core.checkpoint import load_generator, read_config
from djepa_core.presets import get_preset


def test_default_model_is_shipped_with_its_preset_config() -> None:
    path = default_image_checkpoint()
    assert path is not None, "djepa_core/assets/default_image.safetensors is missing"
    assert read_config(path) == get_preset("djepa-digits")
    report = json.loads((ASSETS / "default_image.json").read_text())
    assert report  # the evaluation report ships beside the model


def test_default_model_generates_images() -> None:
    path = default_image_checkpoint()
    assert path is not None
    gen = load_generator(path)
    images = gen.generate([3, 7], seeds=[0, 1], settings=gen.settings(num_steps=4, head_steps=8))
    assert images.shape == (2, 1, 16, 16)
    assert torch.isfinite(images).all()
    again = gen.generate([3], seeds=[0], settings=gen.settings(num_steps=4, head_steps=8))
    torch.testing.assert_close(again[0], images[0], rtol=1e-5, atol=1e-5)
