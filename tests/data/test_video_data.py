"""Video data: the built-in moving digits (seeded, fixed split, bounces) and the UCF-101-style clip folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from djepa_core.data.clips import ClipFolder, pick_frames
from djepa_core.data.digits import load_digits_split
from djepa_core.data.moving_digits import DIGIT_SIZE, bounce_path, load_moving_digits
from djepa_core.data.sources import build_source
from djepa_core.presets import get_preset


def test_bounce_path_reflects_off_both_ends() -> None:
    assert bounce_path(6, 2, 8, 6) == [6, 8, 6, 4, 2, 0]
    assert bounce_path(1, -2, 8, 4) == [1, 1, 3, 5]  # 1 - 2 = -1 reflects to 1, velocity flips
    path = bounce_path(3, 2, 5, 50)
    assert min(path) >= 0 and max(path) <= 5


def test_moving_digits_are_seeded_real_digits_that_move() -> None:
    x, y = load_moving_digits("test", num_frames=6, canvas=16, clips_per_digit=1)
    x2, y2 = load_moving_digits("test", num_frames=6, canvas=16, clips_per_digit=1)
    digits, labels = load_digits_split("test", image_size=DIGIT_SIZE)
    assert x.shape == (360, 6, 1, 16, 16) and torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(y, labels)
    assert x.min() >= -1 and x.max() <= 1
    ink = ((x + 1) / 2).flatten(2).sum(-1)  # (N, T): the whole digit stays on the canvas
    torch.testing.assert_close(ink, ink[:, :1].expand_as(ink))
    moved = (x[:, 1:] != x[:, :-1]).flatten(1).any(1)
    assert moved.float().mean() > 0.95  # never both velocities 0 (a bounce may repeat one frame)
    # frame 0 of clip 0 holds test digit 0 somewhere on the canvas
    frame = x[0, 0, 0]
    found = any(torch.equal(frame[r:r + 8, c:c + 8], digits[0, 0]) for r in range(9) for c in range(9))
    assert found


def test_train_and_test_clips_come_from_disjoint_digits() -> None:
    x_train, _ = load_moving_digits("train", num_frames=2, clips_per_digit=1)
    x_test, _ = load_moving_digits("test", num_frames=2, clips_per_digit=1)
    assert len(x_train) == 1437 and len(x_test) == 360
    assert not torch.equal(x_train[:360], x_test)


def write_clip_folder(root: Path) -> None:
    """cats: a frame folder of 5 PNGs and a .npy [T, H, W] uint8; dogs: a .npy [T, H, W, 3] float."""
    rng = np.random.default_rng(0)
    clip = root / "cats" / "v_cats_g01_c01"
    clip.mkdir(parents=True)
    for t in range(5):
        Image.fromarray(np.full((12, 16, 3), 40 * t, dtype=np.uint8)).save(clip / f"frame{t:03d}.png")
    np.save(root / "cats" / "v_cats_g01_c02.npy", rng.integers(0, 256, (3, 8, 8), dtype=np.uint8))
    (root / "dogs").mkdir()
    np.save(root / "dogs" / "v_dogs_g01_c01.npy", rng.random((6, 8, 8, 3)).astype(np.float32))
    (root / "dogs" / "notes.txt").write_text("not a clip")


def test_clip_folder_reads_frame_folders_and_npy(tmp_path: Path) -> None:
    write_clip_folder(tmp_path)
    ds = ClipFolder(tmp_path, image_size=8, num_frames=4, channels=3)
    assert ds.classes == ["cats", "dogs"] and [c for _, c in ds.items] == [0, 0, 1] and len(ds) == 3
    clip, label = ds[(0, False)]
    assert clip.shape == (4, 3, 8, 8) and label == 0
    # 5 frames, 4 taken from the middle (frames 0..3): gray levels 0, 40, 80, 120
    np.testing.assert_allclose(clip[:, 0, 0, 0].numpy(), np.array([0, 40, 80, 120]) / 127.5 - 1, atol=1e-6)
    short, _ = ds[(1, False)]  # 3 frames: the last one repeats
    assert torch.equal(short[2], short[3])
    flipped, _ = ds[(1, True)]
    assert torch.equal(flipped, torch.flip(short, dims=(-1,)))
    gray = ClipFolder(tmp_path, image_size=8, num_frames=2, channels=1)
    assert gray[(2, False)][0].shape == (2, 1, 8, 8)
    assert pick_frames(10, 3, stride=2) == [2, 4, 6]


def test_clip_folder_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ClipFolder(tmp_path / "missing", 8, 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no clips"):
        ClipFolder(tmp_path, 8, 4)
    np.save(tmp_path / "empty" / "bad.npy", np.zeros((2, 3, 4, 5, 6), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected an array \[T, H, W\]"):
        ClipFolder(tmp_path, 8, 4).load(0)


def test_sources_build_video_sets_for_video_tokenizers(tmp_path: Path) -> None:
    cfg = get_preset("djepa-video-tiny")
    source = build_source("moving-digits", "", "test", cfg)
    x, label = source[(0, False)]
    assert x.shape == (8, 1, 16, 16) and source.kind == "images" and len(source) == 720 and 0 <= label < 10
    write_clip_folder(tmp_path)
    clips = build_source("clips", str(tmp_path), "train", cfg)
    assert clips[(0, False)][0].shape == (8, 1, 16, 16)
    with pytest.raises(ValueError, match="kind 'video'"):
        build_source("moving-digits", "", "train", get_preset("djepa-tiny"))
