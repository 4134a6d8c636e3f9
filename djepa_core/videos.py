"""Video files: uint8 conversion, animated GIF / WebP (Pillow) and `.npz` frame arrays.

Frames are uint8 [T, H, W, C] (C = 1 or 3). GIF and WebP frames can be enlarged by an integer
`upscale` (nearest neighbour: a 16x16 clip is hard to see); `.npz` keeps the native size and holds
`frames` (uint8 [T, H, W, C]), `fps`, plus whatever extra arrays the caller names.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from djepa_core.tokenizers.image_vae import to_uint8

VideoFormat = Literal["gif", "webp", "npz"]
MEDIA_TYPES: dict[str, str] = {"gif": "image/gif", "webp": "image/webp", "npz": "application/x-npz"}


def clip_to_uint8(clip: torch.Tensor) -> np.ndarray:
    """A clip [T, C, H, W] in [-1, 1] -> uint8 [T, H, W, C] (round(clamp((x + 1) / 2) * 255))."""
    if clip.dim() != 4:
        raise ValueError(f"expected a clip [T, C, H, W], got {tuple(clip.shape)}")
    return to_uint8(clip.detach().cpu()).numpy()


def _pil_frames(frames: np.ndarray, upscale: int) -> list[Image.Image]:
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 1 or 3], got {frames.dtype} {frames.shape}")
    if upscale < 1:
        raise ValueError(f"upscale must be >= 1, got {upscale}")
    big = frames.repeat(upscale, axis=1).repeat(upscale, axis=2) if upscale > 1 else frames
    return [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in big]


def encode_video(frames: np.ndarray, fmt: VideoFormat = "gif", fps: float = 8.0, upscale: int = 1,
                 extra: dict[str, np.ndarray | int | float] | None = None) -> bytes:
    """uint8 frames [T, H, W, C] -> the bytes of a looping GIF or animated WebP (lossless), or an `.npz`."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if fmt == "npz":
        _pil_frames(frames[:1], 1)  # same checks as the image formats
        buf = io.BytesIO()
        arrays: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in (extra or {}).items()}
        arrays.update(frames=frames, fps=np.asarray(fps, dtype=np.float64))
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()
    images = _pil_frames(frames, upscale)
    duration = round(1000.0 / fps)  # milliseconds per frame
    buf = io.BytesIO()
    if fmt == "gif":
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                       disposal=1, optimize=False)
    elif fmt == "webp":
        images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], duration=duration, loop=0,
                       lossless=True)
    else:
        raise ValueError(f"video format must be gif, webp or npz, got {fmt!r}")
    return buf.getvalue()


def save_video(frames: np.ndarray, path: str | Path, fps: float = 8.0, upscale: int = 1) -> Path:
    """Write frames to `path`; the format follows its suffix (.gif, .webp or .npz)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"video file must end in .gif, .webp or .npz, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_video(frames, fmt, fps, upscale))  # type: ignore[arg-type]
    return path
