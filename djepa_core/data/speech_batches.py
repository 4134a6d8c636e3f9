"""Training examples of text-to-speech: mel tokens and symbol ids of a corpus, computed once, batched padded.

Each utterance becomes (tokens [n_i, k*80] float16, symbol ids [t_i], mel frames). Utterances longer than
the model's `max_tokens` slots or `max_text` symbols are left out (counted in `skipped`). A batch pads
tokens with silence to `max_tokens` (or fewer slots, at least its longest row) and ids with 0; `lengths`
are the speech tokens per row.
Memory: about 2 bytes x 320 channels x 86 tokens per second of audio (~55 kB/s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from djepa_core.data.ljspeech import LJSpeech
from djepa_core.models.tts import SpeechBatch, SpeechConfig
from djepa_core.text import text_to_ids


class SpeechExamples:
    def __init__(self, dataset: LJSpeech, speech: SpeechConfig, max_tokens: int,
                 progress: Callable[[int, int], None] | None = None) -> None:
        tok = speech.tokenizer()
        self.speech, self.max_tokens = speech, max_tokens
        self.tokens: list[torch.Tensor] = []
        self.ids: list[torch.Tensor] = []
        self.frames: list[int] = []
        self.uids: list[str] = []
        self.skipped = 0
        for i in range(len(dataset)):
            audio, text = dataset[i]
            ids = text_to_ids(text, speech.symbols, normalized=True)
            frames = tok.spectral.num_frames(audio.numel())
            if not ids or len(ids) > speech.max_text or tok.num_tokens(audio.numel()) > max_tokens or frames < 1:
                self.skipped += 1
                continue
            with torch.no_grad():
                self.tokens.append(tok.encode(audio[None])[0].half())
            self.ids.append(torch.tensor(ids, dtype=torch.long))
            self.frames.append(frames)
            self.uids.append(dataset.items[i].id)
            if progress is not None:
                progress(i + 1, len(dataset))
        if not self.tokens:
            raise ValueError(f"no utterance of {dataset.root} fits {max_tokens} tokens and {speech.max_text} symbols")

    def save(self, path: str | Path) -> None:
        """The computed features in one torch file (a cache for repeated training runs)."""
        torch.save({"tokens": self.tokens, "ids": self.ids, "frames": self.frames, "uids": self.uids,
                    "skipped": self.skipped, "max_tokens": self.max_tokens, "speech": self.speech.to_dict()}, path)

    @classmethod
    def load(cls, path: str | Path, speech: SpeechConfig, max_tokens: int) -> SpeechExamples:
        """Features saved by `save` for the same tokenizer settings, symbols and slots (else ValueError)."""
        data = torch.load(path, weights_only=True)
        saved = SpeechConfig.from_dict(data["speech"])
        same = ("symbols", "frames_per_token", "mel_scale", "mel_shift", "max_text")
        if data["max_tokens"] != max_tokens or any(getattr(saved, k) != getattr(speech, k) for k in same):
            raise ValueError(f"{path} holds features for other settings ({data['speech']}, {data['max_tokens']} slots)")
        ex = cls.__new__(cls)
        ex.speech, ex.max_tokens = speech, max_tokens
        ex.tokens, ex.ids, ex.frames = list(data["tokens"]), list(data["ids"]), list(data["frames"])
        ex.uids, ex.skipped = list(data["uids"]), int(data["skipped"])
        return ex

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, indices: Sequence[int], device: torch.device | str = "cpu",
              slots: int | None = None) -> SpeechBatch:
        """Rows padded to `slots` token slots (default `max_tokens`; at least the longest row)."""
        b = len(indices)
        c = self.tokens[0].shape[1]
        longest = max(self.tokens[i].shape[0] for i in indices)
        slots = self.max_tokens if slots is None else slots
        if not longest <= slots <= self.max_tokens:
            raise ValueError(f"slots {slots} must lie in [{longest}, {self.max_tokens}]")
        tokens = torch.full((b, slots, c), self.speech.silence)
        t = max(len(self.ids[i]) for i in indices)
        text = torch.zeros(b, t, dtype=torch.long)
        lengths = torch.zeros(b, dtype=torch.long)
        frames = torch.zeros(b, dtype=torch.long)
        for row, i in enumerate(indices):
            n = self.tokens[i].shape[0]
            tokens[row, :n] = self.tokens[i].float()
            text[row, : len(self.ids[i])] = self.ids[i]
            lengths[row] = n
            frames[row] = self.frames[i]
        return SpeechBatch(tokens.to(device), lengths.to(device), text.to(device), frames=frames.to(device))

    def padded_text(self) -> torch.Tensor:
        """Every utterance's ids [N, max_len] (0-padded): the length model's inputs."""
        t = max(len(x) for x in self.ids)
        out = torch.zeros(len(self.ids), t, dtype=torch.long)
        for i, x in enumerate(self.ids):
            out[i, : len(x)] = x
        return out
