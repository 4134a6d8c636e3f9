"""The video generator: space-time masked AR (random and frame-by-frame orders), seeds, files, checkpoints,
training on moving digits, the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from djepa_core.checkpoint import load_any_generator, load_generator, load_video_generator, save_generator
from djepa_core.cli import main
from djepa_core.models.djepa import DJEPA
from djepa_core.presets import get_preset
from djepa_core.samplers.masked_ar import SampleSettings, frame_major_orders, sample_tokens
from djepa_core.samplers.noise import PerSampleNoise
from djepa_core.trainers.loop import Trainer
from djepa_core.video_pipeline import VideoGenerator
from djepa_core.videos import clip_to_uint8, encode_video

from .trainers.helpers import tiny_config


@pytest.fixture(scope="module")
def gen() -> VideoGenerator:
    return VideoGenerator.from_config(get_preset("djepa-video-tiny"), seed=1)


def test_frame_major_orders_keep_the_order_within_frames() -> None:
    orders = torch.tensor([[5, 0, 3, 7, 1, 6, 2, 4]])  # 4 frames of 2 tokens
    out = frame_major_orders(orders, frame_tokens=2)
    assert out.tolist() == [[7, 6, 5, 4, 3, 2, 0, 1]]  # frame 3 first ... frame 0 last (revealed first)


def test_frames_order_reveals_frame_by_frame(one_thread: None) -> None:
    cfg = get_preset("djepa-video-tiny")
    model = DJEPA(cfg.model).eval()
    revealed: list[torch.Tensor] = []

    class Spy:  # records which tokens are known at each step, through the encoder's mask
        def __init__(self) -> None:
            self.inner = model.encode

        def __call__(self, x: torch.Tensor, mask: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            revealed.append((1 - mask[0]).clone())
            return self.inner(x, mask, c)

    model.encode = Spy()  # type: ignore[method-assign, assignment]
    settings = SampleSettings(num_steps=8, cfg_scale=1.0, head_steps=2, order="frames")
    sample_tokens(model, torch.tensor([3]), PerSampleNoise([0]), settings)
    frame = 16  # tokens per (tubelet-)frame of the (4, 4, 4) grid
    assert len(revealed) == 8
    for known in revealed:  # known tokens fill whole frames from the first one on, then part of the next
        full = int(known.sum()) // frame
        assert bool(known[: full * frame].all()) and int(known[(full + 1) * frame:].sum()) == 0
    with pytest.raises(ValueError, match="needs a \\(t, h, w\\) token grid"):
        sample_tokens(DJEPA(get_preset("djepa-tiny").model).eval(), torch.tensor([1]), PerSampleNoise([0]),
                      settings)


def test_generate_shapes_seeds_and_num_frames(gen: VideoGenerator, one_thread: None) -> None:
    clips = gen.generate([1, 2, 3], seeds=[7, 8, 9])
    assert clips.shape == (3, 8, 1, 16, 16)
    alone = gen.generate([2], seeds=[8])
    torch.testing.assert_close(alone[0], clips[1], rtol=0, atol=1e-5)  # a clip depends only on its seed
    assert gen.generate([2], seeds=[8], num_frames=3).shape == (1, 3, 1, 16, 16)
    framewise = gen.generate([2], seeds=[8], settings=gen.settings(order="frames"))
    assert not torch.allclose(framewise, alone)
    for bad in (0, 9):
        with pytest.raises(ValueError, match="num_frames must be in"):
            gen.generate([1], seeds=[0], num_frames=bad)
    with pytest.raises(ValueError, match="class ids"):
        gen.generate([10], seeds=[0])


def test_video_files_decode_to_the_clip(gen: VideoGenerator) -> None:
    frames = clip_to_uint8(gen.generate([4], seeds=[3])[0])
    assert frames.shape == (8, 16, 16, 1) and frames.dtype == np.uint8
    for fmt, name in (("gif", "GIF"), ("webp", "WEBP")):
        with Image.open(io.BytesIO(encode_video(frames, fmt, fps=10, upscale=3))) as im:  # type: ignore[arg-type]
            assert im.format == name and im.size == (48, 48)
            decoded = np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(im)])
        np.testing.assert_array_equal(decoded, frames[..., 0].repeat(3, 1).repeat(3, 2))
    npz = np.load(io.BytesIO(encode_video(frames, "npz", extra={"seed": 3})))
    np.testing.assert_array_equal(npz["frames"], frames)
    assert int(npz["seed"]) == 3
    with pytest.raises(ValueError, match="gif, webp or npz"):
        encode_video(frames, "mp4")  # type: ignore[arg-type]


def test_checkpoint_round_trip(gen: VideoGenerator, tmp_path: Path) -> None:
    path = save_generator(tmp_path / "video.safetensors", gen)
    loaded = load_video_generator(path)
    assert loaded.config == gen.config and isinstance(load_any_generator(path), VideoGenerator)
    torch.testing.assert_close(loaded.generate([5], seeds=[1]), gen.generate([5], seeds=[1]))
    with pytest.raises(ValueError, match="video model"):
        load_generator(path)


def test_trainer_trains_and_exports_a_video_model(tmp_path: Path, one_thread: None) -> None:
    cfg = tiny_config(tmp_path / "run", "preset=djepa-video-tiny", data={"kind": "moving-digits"},
                      log={"every": 1, "progress": False, "sample_per_class": 1, "sample_classes": 2},
                      loop={"steps": 3, "batch_size": 4, "ema_decay": 0.9, "threads": 1})
    last = Trainer(cfg).train()
    assert last["step"] == 3 and np.isfinite(last["loss"])
    video = load_video_generator(tmp_path / "run" / "model.safetensors")
    assert video.config.model.grid == (4, 4, 4)
    with Image.open(tmp_path / "run" / "samples" / "step-00000003.png") as sheet:
        assert sheet.size[0] > sheet.size[1]  # 2 clips: one row of 8 frames each


def test_cli_sample_video(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "clips"
    assert main(["sample-video", "--preset", "djepa-video-tiny", "--classes", "1", "2", "--num-frames", "4",
                 "--format", "gif", "--upscale", "2", "--out", str(out)]) == 0
    with Image.open(out / "class1-seed0.gif") as im:
        assert im.size == (32, 32) and getattr(im, "n_frames", 1) == 4
    assert (out / "frames.png").is_file() and (out / "class2-seed1.gif").is_file()
    assert main(["sample-video", "--preset", "djepa-video-tiny", "--classes", "11", "--out", str(out)]) == 2


def test_embedded_default_video_model_and_its_report(one_thread: None) -> None:
    import json

    from djepa_core.assets import ASSETS, default_video_checkpoint

    path = default_video_checkpoint()
    assert path is not None and path.stat().st_size < 20 * 2**20  # float16 weights
    gen = load_video_generator(path)
    assert gen.config.name == "djepa-moving-digits" and gen.config.tokenizer.image_size == 12
    clip = gen.generate([3], seeds=[0], num_frames=2, settings=gen.settings(num_steps=4, head_steps=8))
    assert clip.shape == (1, 2, 1, 12, 12) and bool(torch.isfinite(clip).all())
    report = json.loads((ASSETS / "default_video.json").read_text())
    row = next(iter(report["models"].values()))
    assert report["data"] == "moving-digits" and row["clips"] == 500 and "accuracy_ratio" in row
