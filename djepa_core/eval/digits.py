"""`djepa eval` on the built-in digits: class accuracy and feature Fréchet distance of samples.

Protocol (seeds fixed): the classifier (classifier.py, seed 0) is fit on the real training split;
`per_class` samples of each class are generated with seeds 0, 1, ... (sample i uses seed
`seed + i`); samples are clamped to [-1, 1]. The Fréchet estimate is biased upwards at small N
(real train images vs test: 10.4 at N=100, 3.8 at N=360, 1.95 at N=1,437), so the command's
default (144 per class, 1,440 samples) matches the floor's N (the 1,437 training images).
Reported: classifier accuracy on the real test split and on the samples (and their ratio),
Fréchet distance of classifier features samples-vs-test and the floor train-vs-test (and their ratio).
Targets of the embedded model: accuracy ratio >= 0.9 and Fréchet ratio <= 3.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import torch

from djepa_core.data.digits import load_digits_split
from djepa_core.eval.classifier import DigitClassifier
from djepa_core.eval.frechet import frechet_between

TARGET_ACCURACY_RATIO = 0.9
TARGET_FRECHET_RATIO = 3.0


class DigitsReference:
    """The real splits at `image_size`, the fitted classifier and the floor (computed once)."""

    def __init__(self, image_size: int = 16, seed: int = 0) -> None:
        self.image_size = image_size
        self.train_x, self.train_y = load_digits_split("train", image_size)
        self.test_x, self.test_y = load_digits_split("test", image_size)
        self.classifier = DigitClassifier(seed).fit(self.train_x, self.train_y)
        self.test_accuracy = self.classifier.accuracy(self.test_x, self.test_y)
        self.test_features = self.classifier.features(self.test_x)
        self.floor = frechet_between(self.classifier.features(self.train_x), self.test_features)

    def score(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Accuracy and Fréchet distance of `images` [N, 1, S, S] in [-1, 1] with intended `labels`."""
        images = images.float().clamp(-1, 1)
        acc = self.classifier.accuracy(images, labels)
        fd = frechet_between(self.classifier.features(images), self.test_features)
        return {"accuracy": acc, "accuracy_ratio": acc / self.test_accuracy, "frechet": fd,
                "frechet_ratio": fd / self.floor}


@functools.lru_cache(maxsize=4)
def get_reference(image_size: int = 16, seed: int = 0) -> DigitsReference:
    """The (cached) reference of this process: the classifier is fit once per (size, seed)."""
    return DigitsReference(image_size, seed)


def generate_eval_samples(generator: Any, per_class: int, seed: int = 0, batch_size: int = 200,
                          **settings: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` samples of every class of a class-conditional image or video generator, class-major; sample i
    uses seed `seed + i`. Returns (samples, labels)."""
    n_cls = generator.config.model.num_classes
    labels = torch.arange(n_cls).repeat_interleave(per_class)
    s = generator.settings(**settings)
    out = []
    for i in range(0, len(labels), batch_size):
        chunk = labels[i:i + batch_size]
        out.append(generator.generate(chunk, seeds=[seed + j for j in range(i, i + len(chunk))], settings=s).cpu())
    return torch.cat(out), labels


def evaluate_generator(generator: Any, reference: DigitsReference, per_class: int = 144, seed: int = 0,
                       **settings: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    images, labels = generate_eval_samples(generator, per_class, seed, **settings)
    wall = time.perf_counter() - t0
    s = generator.settings(**settings)
    row = reference.score(images, labels)
    return {
        "samples": len(labels), "seed": seed, "sample_wall_s": round(wall, 2),
        "settings": {"num_steps": s.num_steps, "cfg_scale": s.cfg_scale, "cfg_schedule": s.cfg_schedule,
                     "temperature": s.temperature, "head_steps": s.head_steps, "ode_method": s.ode_method,
                     "diffusion_method": s.diffusion_method, "time_shift": s.time_shift},
        **row,
        "meets_targets": bool(row["accuracy_ratio"] >= TARGET_ACCURACY_RATIO
                              and row["frechet_ratio"] <= TARGET_FRECHET_RATIO),
    }


def reference_summary(reference: DigitsReference) -> dict[str, Any]:
    return {"classifier": f"sklearn MLP (1 hidden layer of 128 ReLU, seed 0) on {reference.image_size}x"
                          f"{reference.image_size} pixels of the real training split ({len(reference.train_y)})",
            "test_accuracy": reference.test_accuracy, "test_size": len(reference.test_y),
            "frechet_floor_train_vs_test": reference.floor}


def format_table(reference: DigitsReference, rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| source | class accuracy | / real test | Fréchet (vs test) | / floor | meets targets |",
             "|---|---|---|---|---|---|",
             f"| real test split | {reference.test_accuracy:.4f} | 1.00 | - | - | - |",
             f"| real train split (floor) | - | - | {reference.floor:.3f} | 1.00 | - |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['accuracy_ratio']:.3f} | {r['frechet']:.3f} | "
                     f"{r['frechet_ratio']:.2f} | {'yes' if r['meets_targets'] else 'no'} |")
    return "\n".join(lines)
