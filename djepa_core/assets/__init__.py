"""Embedded default models shipped inside the package (small safetensors files in our format).

`default_image.safetensors`: the default class-conditional image generator (trained on the built-in
`digits` data set; see README). Absent until trained; callers fall back to an untrained preset.
`default_video.safetensors`: the default class-conditional video generator (trained on the built-in
`moving-digits` clips; its evaluation report is `default_video.json`).
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DEFAULT_IMAGE = ASSETS / "default_image.safetensors"
DEFAULT_VIDEO = ASSETS / "default_video.safetensors"


def default_image_checkpoint() -> Path | None:
    """The embedded default image model, or None when this build ships none."""
    return DEFAULT_IMAGE if DEFAULT_IMAGE.is_file() else None


def default_video_checkpoint() -> Path | None:
    """The embedded default video model, or None when this build ships none."""
    return DEFAULT_VIDEO if DEFAULT_VIDEO.is_file() else None
