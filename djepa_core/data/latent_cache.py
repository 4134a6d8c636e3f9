"""Latent cache: VAE moments of every image and of its horizontal flip, read by the trainer.

A cache is a folder: `moments.npy` and `moments_flip.npy` (float32 [N, 2E, h, w], memory-mapped),
`labels.npy` (int64 [N]) and `meta.json` (class names, tokenizer config, source folder). Training
draws the posterior sample from the moments each step (`tokens_from_moments`), as the reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from djepa_core.config import TokenizerConfig
from djepa_core.data.sources import SourceKind

FORMAT = "djepa-latents/1"


def write_latent_cache(out: str | Path, dataset: Any, tokenizer: Any, tokenizer_config: TokenizerConfig,
                       batch_size: int = 64, device: torch.device | str = "cpu", progress: bool = False) -> Path:
    """Encode every image of `dataset` (an ImageFolder) and its flip; files are written then renamed."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    probe = tokenizer.encode_moments(dataset.load(0).unsqueeze(0).to(device))
    shape = (n, *probe.shape[1:])
    tmp = {name: out / f".{name}.npy.tmp" for name in ("moments", "moments_flip")}
    arrays = {name: np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=shape) for name, p in tmp.items()}
    labels = np.zeros(n, dtype=np.int64)
    for start in tqdm(range(0, n, batch_size), desc="cache-latents", unit="batch", disable=not progress):
        idx = range(start, min(n, start + batch_size))
        for name, flip in (("moments", False), ("moments_flip", True)):
            images = torch.stack([dataset.load(i, flip) for i in idx]).to(device)
            arrays[name][start:start + len(idx)] = tokenizer.encode_moments(images).cpu().numpy()
        labels[start:start + len(idx)] = [dataset.items[i][1] for i in idx]
    for name, arr in arrays.items():
        arr.flush()
        del arr
        tmp[name].replace(out / f"{name}.npy")
    arrays.clear()
    np.save(out / "labels.npy", labels)
    meta = {"format": FORMAT, "size": n, "shape": list(shape[1:]), "classes": list(dataset.classes),
            "tokenizer": tokenizer_config.to_dict(), "source": str(dataset.root)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


class LatentCache(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    kind: SourceKind = "moments"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no latent cache at {path} (missing meta.json); write one with "
                                    "`djepa cache-latents`")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a djepa latent cache (format {self.meta.get('format')!r})")
        self.classes = self.meta["classes"]
        self.moments = np.load(path / "moments.npy", mmap_mode="r")
        self.moments_flip = np.load(path / "moments_flip.npy", mmap_mode="r")
        self.labels = np.load(path / "labels.npy")
        if not len(self.moments) == len(self.moments_flip) == len(self.labels) == self.meta["size"]:
            raise ValueError(f"{path}: cache files disagree on the number of samples")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        src = self.moments_flip if flip else self.moments
        return torch.from_numpy(np.array(src[index])), int(self.labels[index])
