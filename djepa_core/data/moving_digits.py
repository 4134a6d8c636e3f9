"""The built-in `moving-digits` video set: scikit-learn's real 8x8 digits moving on a small canvas.

Each clip shows one real digit (class = digit) pasted at native 8x8 resolution on a dark
`canvas` x `canvas` frame (pixels in [-1, 1]; the digit's 0..16 values map to x/8 - 1 as in
`digits`), starting at a random integer position with a random integer velocity of -2..2 pixels per
frame on each axis (never both 0), bouncing off the borders (the position is reflected, the velocity
flips). Clips are built from the fixed digits split (train 1,437 / test 360 digits), `clips_per_digit`
clips per digit, with a generator seeded by (seed, split): the same call always gives the same clips,
and no test digit appears in a training clip.
"""

from __future__ import annotations

import torch

from djepa_core.data.digits import CLASS_NAMES, Split, load_digits_split

DIGIT_SIZE = 8
MAX_SPEED = 2
DEFAULT_CLIPS_PER_DIGIT = {"train": 4, "test": 2, "all": 2}
_SPLIT_IDS = {"train": 1, "test": 2, "all": 3}

__all__ = ["CLASS_NAMES", "bounce_path", "load_moving_digits"]


def bounce_path(start: int, velocity: int, span: int, num_frames: int) -> list[int]:
    """Integer positions in [0, span] over `num_frames` frames, reflecting off both ends."""
    pos, v, out = start, velocity, []
    for _ in range(num_frames):
        out.append(pos)
        nxt = pos + v
        if nxt < 0 or nxt > span:
            v = -v
            nxt = -nxt if nxt < 0 else 2 * span - nxt
        pos = min(max(nxt, 0), span)
    return out


def load_moving_digits(split: Split = "train", num_frames: int = 8, canvas: int = 16,
                       clips_per_digit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips [N, T, 1, canvas, canvas] float32 in [-1, 1], labels [N] int64), N = digits x clips_per_digit."""
    if canvas < DIGIT_SIZE:
        raise ValueError(f"moving-digits canvas must be >= {DIGIT_SIZE}, got {canvas}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    per = DEFAULT_CLIPS_PER_DIGIT.get(split, 2) if clips_per_digit is None else clips_per_digit
    if per < 1:
        raise ValueError(f"clips_per_digit must be >= 1, got {per}")
    digits, labels = load_digits_split(split, image_size=DIGIT_SIZE)  # (N, 1, 8, 8) in [-1, 1]
    g = torch.Generator().manual_seed(seed * 1009 + _SPLIT_IDS[split])
    span = canvas - DIGIT_SIZE
    n = len(labels) * per
    clips = torch.full((n, num_frames, 1, canvas, canvas), -1.0)
    out_labels = labels.repeat_interleave(per)
    for i in range(n):
        digit = digits[i // per]
        y0, x0 = (int(v) for v in torch.randint(0, span + 1, (2,), generator=g))
        while True:
            vy, vx = (int(v) for v in torch.randint(-MAX_SPEED, MAX_SPEED + 1, (2,), generator=g))
            if vy or vx:
                break
        ys, xs = bounce_path(y0, vy, span, num_frames), bounce_path(x0, vx, span, num_frames)
        for t, (y, x) in enumerate(zip(ys, xs, strict=True)):
            clips[i, t, :, y:y + DIGIT_SIZE, x:x + DIGIT_SIZE] = digit
    return clips, out_labels
