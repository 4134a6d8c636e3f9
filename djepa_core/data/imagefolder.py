"""ImageFolder in the ImageNet layout: `root/<class name>/<image file>`, classes sorted by name.

Transform as the reference (MAR/D-JEPA `center_crop_arr`, from ADM): halve with a box filter while
the shorter side is >= 2 x size, resize the shorter side to `size` (bicubic), center crop to
size x size; then the (sampler-chosen) horizontal flip; pixels mapped to [-1, 1]. Pillow only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from djepa_core.data.sources import SourceKind

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def center_crop_arr(image: Image.Image, size: int) -> Image.Image:
    while min(*image.size) >= 2 * size:
        image = image.resize((image.size[0] // 2, image.size[1] // 2), resample=Image.Resampling.BOX)
    scale = size / min(*image.size)
    image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)),
                         resample=Image.Resampling.BICUBIC)
    arr = np.array(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return Image.fromarray(arr[top:top + size, left:left + size])


def scan_image_folder(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names sorted, [(file, class id)] sorted by class then file name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class folders (expected root/<class>/<image>)")
    items = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).rglob("*"))
             if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise ValueError(f"{root}: no images with extensions {IMAGE_EXTENSIONS}")
    return classes, items


class ImageFolder(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    kind: SourceKind = "images"

    def __init__(self, root: str | Path, image_size: int, channels: int = 3) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.root, self.image_size, self.channels = Path(root), image_size, channels
        self.classes, self.items = scan_image_folder(root)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, flip: bool = False) -> torch.Tensor:
        """Image [C, S, S] float32 in [-1, 1]."""
        path, _ = self.items[index]
        with Image.open(path) as im:
            image = center_crop_arr(im.convert("RGB" if self.channels == 3 else "L"), self.image_size)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(image, dtype=np.float32).reshape(self.image_size, self.image_size, self.channels)
        return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        return self.load(index, flip), self.items[index][1]
