"""`djepa eval video` on the built-in moving digits: per-frame class accuracy and temporal consistency.

Protocol (seeds fixed):
- Frame classifier (classifier.py's MLP, seed 0) fit on real training frames: one frame per training
  clip (frame i mod T of clip i), each cropped to a `CROP` x `CROP` window centred on its ink's centre
  of mass, so the classifier judges the digit, not where it is on the canvas.
- Per-frame class accuracy: every frame of every clip labelled by that classifier, against the clip's
  class; on the real test clips (the reference) and on `per_class` samples of each class (sample i
  uses seed `seed + i`, clamped to [-1, 1]). Target: samples' accuracy >= 0.85 x the real test clips'.
- Temporal consistency, each next to the same number on the real test clips:
  `frame_l1`: mean absolute pixel change between consecutive frames (motion plus flicker);
  `ink_cv`: the coefficient of variation over time of each clip's ink mass sum((x + 1) / 2), averaged
  over clips (a digit that fades, grows or splits changes it; a real moving digit keeps it constant
  while it stays on the canvas, which it always does here);
  `label_agreement`: the share of frames whose predicted class is the clip's majority prediction
  (identity kept from frame to frame, whether or not it is the intended class);
  `path_jerk`: how far the motion is from constant velocity: the mean length, in pixels, of the second
  difference c[t+1] - 2 c[t] + c[t-1] of each frame's ink centroid c (real clips move at constant
  velocity and only bounces and the digit's shape at the border give it a non-zero value; a digit that
  jumps about gives a large one).
- `frechet`: Fréchet distance of the classifier's hidden features of the frames, samples vs real test
  frames, next to the floor (real training frames vs real test frames, same numbers of frames).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from djepa_core.data.moving_digits import load_moving_digits
from djepa_core.eval.classifier import DigitClassifier
from djepa_core.eval.digits import generate_eval_samples
from djepa_core.eval.frechet import frechet_between

TARGET_ACCURACY_RATIO = 0.85
CROP = 12


def centre_crop_frames(frames: torch.Tensor, size: int = CROP) -> torch.Tensor:
    """Frames [..., H, W] in [-1, 1] -> [N, 1, size, size] windows centred on each frame's ink centroid
    (outside the canvas reads as background, -1)."""
    x = frames.detach().float().cpu().clamp(-1, 1).reshape(-1, frames.shape[-2], frames.shape[-1])
    n, h, w = x.shape
    mass = (x + 1) / 2
    total = mass.sum((1, 2)).clamp_min(1e-6)
    cy = (mass.sum(2) * torch.arange(h)).sum(1) / total
    cx = (mass.sum(1) * torch.arange(w)).sum(1) / total
    padded = F.pad(x, (size, size, size, size), value=-1.0)
    top = (cy - (size - 1) / 2).round().long().clamp(-size, h) + size
    left = (cx - (size - 1) / 2).round().long().clamp(-size, w) + size
    rows = top[:, None] + torch.arange(size)[None]
    cols = left[:, None] + torch.arange(size)[None]
    return padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def ink_centroids(clips: torch.Tensor) -> torch.Tensor:
    """Ink centre of mass (y, x) in pixels of every frame of clips [N, T, C, S, S] in [-1, 1] -> [N, T, 2]."""
    mass = ((clips.detach().float().cpu().clamp(-1, 1) + 1) / 2).sum(2)  # (N, T, S, S)
    total = mass.sum((2, 3)).clamp_min(1e-6)
    cy = (mass.sum(3) * torch.arange(mass.shape[2])).sum(2) / total
    cx = (mass.sum(2) * torch.arange(mass.shape[3])).sum(2) / total
    return torch.stack([cy, cx], dim=-1)


def temporal_stats(clips: torch.Tensor) -> dict[str, float]:
    """frame_l1, ink_cv and path_jerk of clips [N, T, C, S, S] in [-1, 1] (see the module docstring)."""
    x = clips.detach().float().cpu().clamp(-1, 1)
    if x.shape[1] < 2:
        raise ValueError("temporal measures need clips of at least 2 frames")
    frame_l1 = float((x[:, 1:] - x[:, :-1]).abs().mean())
    ink = ((x + 1) / 2).flatten(2).sum(-1)  # (N, T)
    ink_cv = float((ink.std(dim=1) / ink.mean(dim=1).clamp_min(1e-6)).mean())
    out = {"frame_l1": frame_l1, "ink_cv": ink_cv}
    if x.shape[1] >= 3:
        c = ink_centroids(x)
        out["path_jerk"] = float((c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]).norm(dim=-1).mean())
    return out


class MovingDigitsReference:
    """Real moving-digits splits, the fitted frame classifier and the real clips' numbers (computed once)."""

    def __init__(self, num_frames: int = 8, canvas: int = 16, seed: int = 0, limit: int | None = None) -> None:
        """`limit`: use only the first `limit` training and test clips (quick checks; reports use all)."""
        self.num_frames, self.canvas = num_frames, canvas
        train_x, train_y = load_moving_digits("train", num_frames, canvas)
        self.test_x, self.test_y = load_moving_digits("test", num_frames, canvas)
        if limit is not None:
            train_x, train_y, self.test_x, self.test_y = train_x[:limit], train_y[:limit], self.test_x[:limit], \
                self.test_y[:limit]
        pick = torch.arange(len(train_y)) % num_frames
        train_frames = train_x[torch.arange(len(train_y)), pick]  # one frame per clip, (N, 1, S, S)
        self.train_size = len(train_y)
        self.classifier = DigitClassifier(seed).fit(centre_crop_frames(train_frames), train_y)
        self.test = self.score_clips(self.test_x, self.test_y, with_frechet=False)
        self.test_features = self.classifier.features(centre_crop_frames(self.test_x))
        floor_frames = train_frames[: len(self.test_features)]
        self.floor = frechet_between(self.classifier.features(centre_crop_frames(floor_frames)), self.test_features)

    def score_clips(self, clips: torch.Tensor, labels: torch.Tensor, with_frechet: bool = True) -> dict[str, float]:
        """Per-frame accuracy, label agreement, temporal stats (and Fréchet) of clips [N, T, C, S, S]."""
        clips = clips.float().clamp(-1, 1)
        n, t = clips.shape[:2]
        crops = centre_crop_frames(clips)
        pred = self.classifier.predict(crops).reshape(n, t)
        want = np.asarray(labels).reshape(n, 1)
        majority = np.array([np.bincount(row, minlength=10).argmax() for row in pred]).reshape(n, 1)
        out = {"frame_accuracy": float((pred == want).mean()),
               "clip_accuracy": float((majority == want).mean()),
               "label_agreement": float((pred == majority).mean()),
               **temporal_stats(clips)}
        if with_frechet:
            out["frechet"] = frechet_between(self.classifier.features(crops), self.test_features)
        return out

    def score(self, clips: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """score_clips plus the ratios to the real test clips' numbers."""
        row = self.score_clips(clips, labels)
        ref = self.test
        row["accuracy_ratio"] = row["frame_accuracy"] / ref["frame_accuracy"]
        row["frame_l1_ratio"] = row["frame_l1"] / ref["frame_l1"]
        row["frechet_ratio"] = row["frechet"] / self.floor
        return row


@functools.lru_cache(maxsize=2)
def get_reference(num_frames: int = 8, canvas: int = 16, seed: int = 0) -> MovingDigitsReference:
    """The (cached) reference of this process: the classifier is fit once per (frames, canvas, seed)."""
    return MovingDigitsReference(num_frames, canvas, seed)


def evaluate_video_generator(generator: Any, reference: MovingDigitsReference, per_class: int = 50, seed: int = 0,
                             **settings: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    # sample i of the class-major label list uses seed + i, as for images; 100 clips per generate call
    clips, labels = generate_eval_samples(generator, per_class, seed, batch_size=100, **settings)
    wall = time.perf_counter() - t0
    s = generator.settings(**settings)
    row = reference.score(clips, labels)
    return {
        "clips": len(labels), "seed": seed, "sample_wall_s": round(wall, 2),
        "settings": {"num_steps": s.num_steps, "cfg_scale": s.cfg_scale, "cfg_schedule": s.cfg_schedule,
                     "temperature": s.temperature, "head_steps": s.head_steps, "order": s.order},
        **row,
        "meets_target": bool(row["accuracy_ratio"] >= TARGET_ACCURACY_RATIO),
    }


def reference_summary(reference: MovingDigitsReference) -> dict[str, Any]:
    return {"classifier": f"sklearn MLP (1 hidden layer of 128 ReLU, seed 0) on {CROP}x{CROP} ink-centred crops of "
                          f"one frame per real training clip ({reference.train_size})",
            "test_clips": len(reference.test_y), "frames": reference.num_frames, "canvas": reference.canvas,
            "real_test": reference.test, "frechet_floor_train_vs_test": reference.floor,
            "target_accuracy_ratio": TARGET_ACCURACY_RATIO}


def _opt(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.3f}" if key in row else "-"  # clips of fewer than 3 frames have no path jerk


def format_table(reference: MovingDigitsReference, rows: dict[str, dict[str, Any]]) -> str:
    ref = reference.test
    lines = ["| source | per-frame accuracy | / real test (target >= 0.85) | clip accuracy | label agreement | "
             "frame-to-frame L1 | / real | ink CV | path jerk (px) | Fréchet (vs test) | / floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| real test clips | {ref['frame_accuracy']:.4f} | 1.00 | {ref['clip_accuracy']:.4f} | "
             f"{ref['label_agreement']:.4f} | {ref['frame_l1']:.4f} | 1.00 | {ref['ink_cv']:.4f} | "
             f"{_opt(ref, 'path_jerk')} | - | - |",
             f"| real train frames (floor) | - | - | - | - | - | - | - | - | {reference.floor:.3f} | 1.00 |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['frame_accuracy']:.4f} | {r['accuracy_ratio']:.3f} | {r['clip_accuracy']:.4f} | "
                     f"{r['label_agreement']:.4f} | {r['frame_l1']:.4f} | {r['frame_l1_ratio']:.2f} | "
                     f"{r['ink_cv']:.4f} | {_opt(r, 'path_jerk')} | {r['frechet']:.3f} | {r['frechet_ratio']:.2f} |")
    return "\n".join(lines)
