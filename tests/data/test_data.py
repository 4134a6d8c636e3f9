from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from djepa_core.data.digits import load_digits_split
from djepa_core.data.imagefolder import ImageFolder, center_crop_arr
from djepa_core.data.sampler import ResumableBatchSampler
from djepa_core.data.sources import build_source
from djepa_core.presets import get_preset


def test_digits_split_fixed_and_scaled() -> None:
    x, y = load_digits_split("train")
    xt, yt = load_digits_split("test")
    assert x.shape == (1437, 1, 16, 16) and xt.shape == (360, 1, 16, 16)
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert sorted(set(y.tolist())) == list(range(10)) and torch.bincount(yt).min() >= 35
    x2, y2 = load_digits_split("train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    raw, _ = load_digits_split("all", image_size=8)
    from sklearn.datasets import load_digits

    assert torch.allclose(raw[:, 0], torch.as_tensor(load_digits().images, dtype=torch.float32) / 8 - 1)
    with pytest.raises(ValueError):
        load_digits_split("val")  # type: ignore[arg-type]


def test_sampler_is_resumable_and_sharded() -> None:
    s = ResumableBatchSampler(20, 3, seed=1, flip=True)
    assert s.batches_per_epoch == 6
    it = iter(s)
    stream = [next(it) for _ in range(14)]  # crosses two epoch boundaries
    it5 = iter(ResumableBatchSampler(20, 3, seed=1, flip=True, start=5))
    assert [next(it5) for _ in range(9)] == stream[5:]
    epoch = [i for b in stream[:6] for i, _ in b]
    assert len(set(epoch)) == 18  # no repeat within an epoch
    assert any(f for b in stream for _, f in b) and not all(f for b in stream for _, f in b)
    r0 = {i for b in ResumableBatchSampler(20, 2, rank=0, world=2).epoch_batches(0) for i, _ in b}
    r1 = {i for b in ResumableBatchSampler(20, 2, rank=1, world=2).epoch_batches(0) for i, _ in b}
    assert r0.isdisjoint(r1) and len(r0 | r1) == 20
    with pytest.raises(ValueError, match="too small"):
        ResumableBatchSampler(5, 3, world=2)


def make_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3,
                      size: tuple[int, int] = (40, 30)) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"img{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_center_crop_as_reference() -> None:
    im = Image.fromarray(np.arange(100 * 60 * 3, dtype=np.uint8).reshape(60, 100, 3))
    out = center_crop_arr(im, 16)  # 60x100 -> halved to 30x50 -> 16x27 -> center 16x16
    assert out.size == (16, 16)
    assert center_crop_arr(Image.new("RGB", (16, 16)), 16).size == (16, 16)


def test_image_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "data")
    ds = ImageFolder(root, 16)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    x, y = ds[(4, False)]
    assert x.shape == (3, 16, 16) and y == 1 and x.min() >= -1 and x.max() <= 1
    xf, _ = ds[(4, True)]
    assert torch.equal(xf, torch.flip(x, dims=(-1,)))
    gray = ImageFolder(root, 8, channels=1)
    assert gray[(0, False)][0].shape == (1, 8, 8)
    assert len(build_source("digits", "", "test", get_preset("djepa-tiny"))) == 360
    with pytest.raises(ValueError, match=r"data\.path"):
        build_source("imagefolder", "", "train", get_preset("djepa-tiny"))
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        ImageFolder(tmp_path / "empty", 16)
