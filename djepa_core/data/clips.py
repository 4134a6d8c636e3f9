"""Folder of video clips in the UCF-101 style: `root/<class name>/<clip>`, classes sorted by name.

A clip is either a folder of frame images (any of IMAGE_EXTENSIONS, in file-name order) or one
`.npy` array [T, H, W] or [T, H, W, C] (uint8 0..255, or float in [0, 1]). Each frame is
center-cropped and resized as the image folders (`center_crop_arr`, Pillow only); `num_frames`
frames are taken from the middle of the clip, every `frame_stride`-th one; a shorter clip repeats its
last frame. Items are clips [T, C, S, S] float32 in [-1, 1]; the (sampler-chosen) flip mirrors every
frame of a clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from djepa_core.data.imagefolder import IMAGE_EXTENSIONS, center_crop_arr
from djepa_core.data.sources import SourceKind


def scan_clip_folder(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names sorted, [(clip folder or .npy file, class id)] sorted by class then clip name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no clip folder at {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class folders (expected root/<class>/<clip folder or .npy>)")
    items: list[tuple[Path, int]] = []
    for c, name in enumerate(classes):
        for clip in sorted((root / name).iterdir()):
            if clip.name.startswith("."):
                continue
            if (clip.is_file() and clip.suffix.lower() == ".npy") or (clip.is_dir() and _frame_files(clip)):
                items.append((clip, c))
    if not items:
        raise ValueError(f"{root}: no clips (frame folders of {IMAGE_EXTENSIONS} or .npy arrays)")
    return classes, items


def _frame_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)


def _npy_frames(path: Path) -> list[Image.Image]:
    arr = np.load(path, allow_pickle=False)
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{path}: expected an array [T, H, W] or [T, H, W, C], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return [Image.fromarray(np.ascontiguousarray(frame)) for frame in arr]


def pick_frames(length: int, num_frames: int, stride: int = 1) -> list[int]:
    """Indices of `num_frames` frames, every `stride`-th, centred in a clip of `length` (last one repeated)."""
    if length < 1:
        raise ValueError("a clip needs at least one frame")
    span = (num_frames - 1) * stride + 1
    start = max(0, (length - span) // 2)
    return [min(start + i * stride, length - 1) for i in range(num_frames)]


class ClipFolder(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    kind: SourceKind = "images"  # clips of pixels; the (video) tokenizer takes them as they are

    def __init__(self, root: str | Path, image_size: int, num_frames: int, channels: int = 3,
                 frame_stride: int = 1) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if num_frames < 1 or frame_stride < 1:
            raise ValueError("num_frames and frame_stride must be >= 1")
        self.root, self.image_size, self.channels = Path(root), image_size, channels
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.classes, self.items = scan_clip_folder(root)

    def __len__(self) -> int:
        return len(self.items)

    def _frames(self, clip: Path) -> list[Image.Image]:
        if clip.is_dir():
            files = _frame_files(clip)
            keep = pick_frames(len(files), self.num_frames, self.frame_stride)
            frames = []
            for i in keep:
                with Image.open(files[i]) as im:
                    im.load()
                    frames.append(im.copy())
            return frames
        all_frames = _npy_frames(clip)
        return [all_frames[i] for i in pick_frames(len(all_frames), self.num_frames, self.frame_stride)]

    def load(self, index: int, flip: bool = False) -> torch.Tensor:
        """Clip [T, C, S, S] float32 in [-1, 1]."""
        clip, _ = self.items[index]
        mode = "RGB" if self.channels == 3 else "L"
        out = []
        for frame in self._frames(clip):
            image = center_crop_arr(frame.convert(mode), self.image_size)
            if flip:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            arr = np.asarray(image, dtype=np.float32).reshape(self.image_size, self.image_size, self.channels)
            out.append(torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0)
        return torch.stack(out)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        return self.load(index, flip), self.items[index][1]
