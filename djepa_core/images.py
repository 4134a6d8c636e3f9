"""Image files: uint8 conversion and PNG grids (Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from djepa_core.tokenizers.image_vae import to_uint8


def grid_image(images: torch.Tensor, ncols: int, min_cell: int = 64, pad: int = 2) -> Image.Image:
    """Images [N, C, H, W] in [-1, 1] -> one PIL image, `ncols` per row, cells upscaled (nearest)
    to at least `min_cell` pixels, `pad` pixels of white between cells."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    arr = to_uint8(images.cpu()).numpy()  # (N, H, W, C)
    n, h, w, c = arr.shape
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    k = max(1, -(-min_cell // max(h, w)))
    arr = arr.repeat(k, axis=1).repeat(k, axis=2)
    h, w = h * k, w * k
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = arr[i]
    return Image.fromarray(canvas)


def save_png(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
