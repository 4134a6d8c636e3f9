"""Training examples of text-to-speech: mel tokens and symbol ids of a corpus, computed once, batched padded.

Each utterance becomes (tokens [n_i, k*80] float16, symbol ids [t_i], mel frames). Utterances longer than
the model's `max_tokens` slots or `max_text` symbols are left out (counted in `skipped`). A batch pads
tokens with silence to `max_tokens` (or fewer slots, at least its longest row) and ids with 0; `lengths`
are the speech tokens per row.
Measured alignment: when the corpus has `alignments.csv` (espeak-ng's word timings, `data/espeak_align.py`)
and the symbols are characters, each aligned utterance also gets its mel frames per symbol (`durations`,
float, summing to its frames); a batch carries them when all its rows have them (else None: the model
falls back to its predicted or proportional durations). With `phoneme-events` symbols the ids and their
durations come from the corpus's `phonemes.csv` (espeak-ng's phoneme events: one duration per phoneme
symbol); utterances it lacks get their ids from the library (`spoken_phonemes`) and no durations.
Memory: about 2 bytes x 320 channels x 86 tokens per second of audio (~55 kB/s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from djepa_core.data.espeak_align import (
    Alignment,
    PhonemeAlignment,
    char_durations,
    read_alignments,
    read_phoneme_alignments,
)
from djepa_core.data.ljspeech import LJSpeech, read_metadata
from djepa_core.models.tts import SpeechBatch, SpeechConfig
from djepa_core.text import PHONEMES, text_to_ids


def measured_durations(text: str, ids: Sequence[int], alignment: Alignment, frames: int,
                       frames_per_ms: float) -> torch.Tensor | None:
    """Mel frames per symbol [len(ids)] (float, summing to `frames`) of a character-symbol utterance from its
    word timings; None when the ids are not the text's characters one to one or the timings do not fit."""
    if len(ids) != len(text) or frames < 1:
        return None
    try:
        ms = char_durations(text, alignment.words, frames / frames_per_ms)
    except ValueError:
        return None
    d = torch.tensor(ms, dtype=torch.float32) * frames_per_ms
    return d * (frames / d.sum().clamp(min=1e-6))


def phoneme_frames(alignment: PhonemeAlignment, frames: int, frames_per_ms: float) -> torch.Tensor | None:
    """Mel frames per symbol [len(symbols)] (float, summing to `frames`) of a phonemes.csv line; None when
    some symbol is not in the PHONEMES set or the utterance has no frames."""
    if frames < 1 or len(PHONEMES.encode(alignment.symbols)) != len(alignment.symbols):
        return None
    d = torch.tensor(alignment.ms, dtype=torch.float32).clamp(min=0) * frames_per_ms
    return d * (frames / d.sum().clamp(min=1e-6))


class SpeechExamples:
    def __init__(self, dataset: LJSpeech, speech: SpeechConfig, max_tokens: int,
                 progress: Callable[[int, int], None] | None = None) -> None:
        tok = speech.tokenizer()
        self.speech, self.max_tokens = speech, max_tokens
        self.tokens: list[torch.Tensor] = []
        self.ids: list[torch.Tensor] = []
        self.frames: list[int] = []
        self.uids: list[str] = []
        self.durations: list[torch.Tensor | None] = []
        self.skipped = 0
        events = read_phoneme_alignments(dataset.root) if speech.symbols == "phoneme-events" else {}
        for i in range(len(dataset)):
            audio, text = dataset[i]
            uid = dataset.items[i].id
            if uid in events:
                ids = PHONEMES.encode(events[uid].symbols)
            else:
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
            self.durations.append(None)
            if progress is not None:
                progress(i + 1, len(dataset))
        if not self.tokens:
            raise ValueError(f"no utterance of {dataset.root} fits {max_tokens} tokens and {speech.max_text} symbols")
        self.attach_alignments(dataset.root)

    def attach_alignments(self, root: str | Path, phonemes: dict[str, PhonemeAlignment] | None = None) -> int:
        """Measured durations from `root/alignments.csv` (character symbols) or `root/phonemes.csv`
        (`phoneme-events` symbols, where the line's symbols are the utterance's ids; `phonemes`: that file
        already read) for the utterances they align (a corpus without the file changes nothing); returns how
        many utterances have them."""
        cfg = self.speech.tokenizer().cfg
        frames_per_ms = cfg.sample_rate / cfg.hop / 1000.0
        if self.speech.symbols == "phoneme-events":
            events = phonemes if phonemes is not None else read_phoneme_alignments(root)
            for i, uid in enumerate(self.uids):
                if uid in events and PHONEMES.encode(events[uid].symbols) == self.ids[i].tolist():
                    self.durations[i] = phoneme_frames(events[uid], self.frames[i], frames_per_ms)
            return sum(d is not None for d in self.durations)
        aligned = read_alignments(root)
        if aligned and self.speech.symbols == "characters":
            spoken = {u.id: u.normalized for u in read_metadata(root)}  # what espeak-ng spoke, character for character
            for i, uid in enumerate(self.uids):
                if uid in aligned and uid in spoken:
                    self.durations[i] = measured_durations(spoken[uid], self.ids[i].tolist(), aligned[uid],
                                                           self.frames[i], frames_per_ms)
        return sum(d is not None for d in self.durations)

    def save(self, path: str | Path) -> None:
        """The computed features in one torch file (a cache for repeated training runs)."""
        torch.save({"tokens": self.tokens, "ids": self.ids, "frames": self.frames, "uids": self.uids,
                    "durations": [torch.empty(0) if d is None else d for d in self.durations],
                    "skipped": self.skipped, "max_tokens": self.max_tokens, "speech": self.speech.to_dict()}, path)

    @classmethod
    def load(cls, path: str | Path, speech: SpeechConfig, max_tokens: int,
             corpus: str | Path | None = None) -> SpeechExamples:
        """Features saved by `save` for the same tokenizer settings, symbols and slots (else ValueError).
        With `phoneme-events` symbols and the `corpus` the cache was computed from, a cache of other symbols
        serves too: its mel tokens are kept and the ids and durations come from the corpus's phonemes.csv
        (utterances it lacks, or longer than `max_text` symbols, are left out and counted in `skipped`)."""
        data = torch.load(path, weights_only=True)
        saved = SpeechConfig.from_dict(data["speech"])
        same = ("frames_per_token", "mel_scale", "mel_shift")
        if data["max_tokens"] != max_tokens or any(getattr(saved, k) != getattr(speech, k) for k in same):
            raise ValueError(f"{path} holds features for other settings ({data['speech']}, {data['max_tokens']} slots)")
        if saved.symbols != speech.symbols or saved.max_text != speech.max_text:
            if speech.symbols != "phoneme-events" or corpus is None:
                raise ValueError(f"{path} holds features for other symbols ({saved.symbols}, <= {saved.max_text})")
            return cls._with_phoneme_events(data, speech, max_tokens, corpus)
        ex = cls.__new__(cls)
        ex.speech, ex.max_tokens = speech, max_tokens
        ex.tokens, ex.ids, ex.frames = list(data["tokens"]), list(data["ids"]), list(data["frames"])
        ex.uids, ex.skipped = list(data["uids"]), int(data["skipped"])
        saved_d = data.get("durations") or [torch.empty(0)] * len(ex.tokens)  # caches written before alignments
        ex.durations = [d if d.numel() else None for d in saved_d]
        return ex

    @classmethod
    def _with_phoneme_events(cls, data: dict[str, Any], speech: SpeechConfig, max_tokens: int,
                             corpus: str | Path) -> SpeechExamples:
        events = read_phoneme_alignments(corpus)
        ex = cls.__new__(cls)
        ex.speech, ex.max_tokens = speech, max_tokens
        ex.tokens, ex.ids, ex.frames, ex.uids, ex.durations = [], [], [], [], []
        ex.skipped = int(data["skipped"])
        for tokens, frames, uid in zip(data["tokens"], data["frames"], data["uids"], strict=True):
            ids = PHONEMES.encode(events[uid].symbols) if uid in events else []
            if not ids or len(ids) > speech.max_text:
                ex.skipped += 1
                continue
            ex.tokens.append(tokens)
            ex.ids.append(torch.tensor(ids, dtype=torch.long))
            ex.frames.append(int(frames))
            ex.uids.append(uid)
            ex.durations.append(None)
        if not ex.tokens:
            raise ValueError(f"{corpus}/phonemes.csv has none of the cached utterances")
        ex.attach_alignments(corpus, events)
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
        measured = all(self.durations[i] is not None for i in indices)
        durations = torch.zeros(b, t) if measured else None
        for row, i in enumerate(indices):
            n = self.tokens[i].shape[0]
            tokens[row, :n] = self.tokens[i].float()
            text[row, : len(self.ids[i])] = self.ids[i]
            lengths[row] = n
            frames[row] = self.frames[i]
            d = self.durations[i]
            if durations is not None and d is not None:
                durations[row, : d.numel()] = d
        return SpeechBatch(tokens.to(device), lengths.to(device), text.to(device), frames=frames.to(device),
                           durations=None if durations is None else durations.to(device))

    def padded_durations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [M, T], measured frames per symbol [M, T]) of the M utterances that have durations (0-padded)."""
        rows = [i for i, d in enumerate(self.durations) if d is not None]
        t = max((len(self.ids[i]) for i in rows), default=1)
        ids = torch.zeros(len(rows), t, dtype=torch.long)
        dur = torch.zeros(len(rows), t)
        for r, i in enumerate(rows):
            d = self.durations[i]
            assert d is not None
            ids[r, : len(self.ids[i])] = self.ids[i]
            dur[r, : d.numel()] = d
        return ids, dur

    def padded_text(self) -> torch.Tensor:
        """Every utterance's ids [N, max_len] (0-padded): the length model's inputs."""
        t = max(len(x) for x in self.ids)
        out = torch.zeros(len(self.ids), t, dtype=torch.long)
        for i, x in enumerate(self.ids):
            out[i, : len(x)] = x
        return out
