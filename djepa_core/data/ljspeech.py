"""Speech corpora in the LJSpeech-1.1 layout: `metadata.csv` and `wavs/<id>.wav`.

`metadata.csv` has one utterance per line, `id|text|normalized text`, no header and no quoting (the
texts contain quotes); a missing or empty third column is filled by our normalizer. Audio is read
with the standard library (PCM WAV), averaged to mono, and resampled to the tokenizer's 22,050 Hz
when the file has another rate.

Split: an utterance is held out ("test") when crc32(id) % 100 < test_percent (default 5), so the
split of an utterance never depends on the rest of the corpus or its order.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from djepa_core.audio_io import read_wav, resample

Split = Literal["train", "test", "all"]
SAMPLE_RATE = 22050


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    normalized: str
    wav: Path


def read_metadata(root: str | Path) -> list[Utterance]:
    """Every line of `root/metadata.csv`, in file order (errors name the file and line)."""
    from djepa_core.text.normalize import normalize

    root = Path(root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: an LJSpeech-layout corpus has metadata.csv and wavs/")
    items = []
    with meta.open(encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise ValueError(f"{meta}:{lineno}: expected 'id|text|normalized text', got {'|'.join(row)!r}")
            uid, text = row[0].strip(), row[1]
            norm = row[2].strip() if len(row) > 2 and row[2].strip() else ""
            items.append(Utterance(uid, text, normalize(norm or text), root / "wavs" / f"{uid}.wav"))
    if not items:
        raise ValueError(f"{meta} lists no utterances")
    return items


def is_held_out(uid: str, test_percent: int) -> bool:
    return zlib.crc32(uid.encode("utf-8")) % 100 < test_percent


class LJSpeech(torch.utils.data.Dataset[tuple[torch.Tensor, str]]):
    """Items: (audio [N] float32 at `sample_rate`, normalized text)."""

    def __init__(self, root: str | Path, split: Split = "all", test_percent: int = 5,
                 sample_rate: int = SAMPLE_RATE, check_files: bool = True) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not 0 <= test_percent <= 100:
            raise ValueError(f"test_percent must be in [0, 100], got {test_percent}")
        self.root = Path(root)
        self.sample_rate = sample_rate
        items = read_metadata(self.root)
        if split != "all":
            items = [u for u in items if is_held_out(u.id, test_percent) == (split == "test")]
        if check_files:
            missing = [u.wav for u in items if not u.wav.is_file()]
            if missing:
                raise FileNotFoundError(f"{len(missing)} audio file(s) listed in metadata.csv are missing, "
                                        f"e.g. {missing[0]}")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def audio(self, i: int) -> torch.Tensor:
        x, rate = read_wav(self.items[i].wav)
        return resample(x, rate, self.sample_rate) if rate != self.sample_rate else x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.audio(i), self.items[i].normalized

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        for i in range(len(self)):
            yield self[i]
