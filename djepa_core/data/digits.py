"""The built-in `digits` data set: scikit-learn's 1,797 real 8x8 handwritten digits, 10 classes.

Images are upsampled 8x8 -> `image_size` (default 16) with bilinear interpolation
(`align_corners=False`, as `F.interpolate`), after mapping the raw values 0..16 to [-1, 1]
(x / 8 - 1). The train/test split is fixed: stratified, 20% test, `random_state=0` (1,437 / 360).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Split = Literal["train", "test", "all"]
SPLIT_SEED = 0
TEST_FRACTION = 0.2
CLASS_NAMES = tuple(str(i) for i in range(10))


def load_digits_split(split: Split = "train", image_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, S, S] float32 in [-1, 1], labels [N] int64) of the fixed split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}")
    if image_size < 8:
        raise ValueError(f"digits image_size must be >= 8, got {image_size}")
    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32)  # (N, 8, 8), values 0..16
    y = torch.as_tensor(data.target, dtype=torch.long)
    if split != "all":
        idx = torch.arange(len(y)).numpy()
        train_idx, test_idx = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                               stratify=data.target)
        keep = torch.as_tensor(train_idx if split == "train" else test_idx)
        x, y = x[keep], y[keep]
    x = x.unsqueeze(1) / 8.0 - 1.0  # (N, 1, 8, 8) in [-1, 1]
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.clamp(-1.0, 1.0).contiguous(), y
