"""`djepa eval video`: per-frame accuracy and temporal consistency of clips (on a small real subset: quick)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from djepa_core.checkpoint import save_generator
from djepa_core.cli import main
from djepa_core.eval.video import (
    MovingDigitsReference,
    centre_crop_frames,
    evaluate_video_generator,
    format_table,
    temporal_stats,
)
from djepa_core.presets import get_preset
from djepa_core.video_pipeline import VideoGenerator


@pytest.fixture(scope="module")
def reference() -> MovingDigitsReference:
    return MovingDigitsReference(limit=300)


def test_centre_crop_follows_the_ink() -> None:
    frame = torch.full((1, 16, 16), -1.0)
    frame[0, 10:13, 2:5] = 1.0  # a 3x3 blob centred at (11, 3)
    crop = centre_crop_frames(frame, size=6)
    assert crop.shape == (1, 1, 6, 6) and int((crop > 0).sum()) == 9
    assert bool((crop[0, 0, 2:5, 2:5] > 0).all())  # centred (round half to even), wherever it is on the canvas


def test_temporal_stats_of_still_moving_and_flickering_clips() -> None:
    still = torch.full((2, 4, 1, 8, 8), -1.0)
    still[:, :, :, 2:4, 2:4] = 1.0
    moving = torch.roll(still, shifts=1, dims=-1).clone()
    for t in range(4):
        moving[:, t] = torch.roll(still[:, t], shifts=t, dims=-1)
    flicker = still.clone()
    flicker[:, 1::2] = -1.0  # the digit vanishes every other frame
    assert temporal_stats(still) == {"frame_l1": 0.0, "ink_cv": 0.0, "path_jerk": 0.0}
    assert temporal_stats(moving)["frame_l1"] > 0 and temporal_stats(moving)["ink_cv"] < 1e-6
    assert temporal_stats(moving)["path_jerk"] < 1e-5  # one pixel a frame: constant velocity
    jumpy = moving[:, [0, 2, 1, 3]]  # the same frames out of order
    assert temporal_stats(jumpy)["path_jerk"] > 1.0
    assert temporal_stats(flicker)["ink_cv"] > 0.5
    assert "path_jerk" not in temporal_stats(still[:, :2])  # needs 3 frames


def test_real_clips_score_as_the_reference(reference: MovingDigitsReference) -> None:
    ref = reference.test
    assert ref["frame_accuracy"] > 0.5 and ref["label_agreement"] > 0.7  # 300 training frames only
    real = reference.score(reference.test_x, reference.test_y)
    assert real["accuracy_ratio"] == pytest.approx(1.0) and real["frame_l1_ratio"] == pytest.approx(1.0)
    wrong = reference.score(reference.test_x, (reference.test_y + 1) % 10)
    assert wrong["frame_accuracy"] < ref["frame_accuracy"] / 2


def test_evaluate_an_untrained_generator(reference: MovingDigitsReference) -> None:
    gen = VideoGenerator.from_config(get_preset("djepa-video-tiny"))
    row = evaluate_video_generator(gen, reference, per_class=2, seed=0)
    assert row["clips"] == 20 and 0 <= row["frame_accuracy"] <= 1 and row["settings"]["order"] == "random"
    assert {"frame_l1", "ink_cv", "label_agreement", "frechet", "meets_target"} <= set(row)
    assert "untrained" in format_table(reference, {"untrained": row})


def test_cli_eval_video_refuses_image_models(tmp_path: Path) -> None:
    from djepa_core.pipeline import ImageGenerator

    image = save_generator(tmp_path / "image.safetensors", ImageGenerator.from_config(get_preset("djepa-tiny")))
    assert main(["eval", "video", "--checkpoint", str(image)]) == 2
    assert main(["eval", "video", "--per-class", "1", "--checkpoint", str(image)]) == 2
    # (the full command runs by hand: it fits the classifier on every training clip; see README "Video")
