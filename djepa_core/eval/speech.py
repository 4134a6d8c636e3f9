"""Quality of generated speech on held-out sentences (quality.md): intelligibility, spectra, durations.

For each held-out utterance of an LJSpeech-layout corpus (the loader's "test" split), the generator
speaks its normalized text and we measure:
- word error rate (WER) of a recognizer on the generated audio, next to the same recognizer on the
  reference recording, and on the reference mel through our vocoder (Griffin-Lim), which separates
  what the model loses from what the vocoder loses. The recognizer is pocketsphinx's English acoustic
  model and dictionary (shipped in its wheel, 16 kHz); it is weak, so only ratios to the reference are
  meaningful. Its language model is by default a bigram model of the corpus's TRAINING split text
  (`bigram_arpa`), never of the held-out sentences, with the dictionary cut to that vocabulary; held-out
  words outside it count as errors for reference and generated audio alike. `lm="generic"` uses the
  wheel's general English LM and full dictionary.
- mel L1: mean |log-mel(generated) - log-mel(reference)| (natural log, 80 bands) after resampling the
  generated frames linearly along time to the reference's frame count ("length-aligned").
- duration ratio: generated samples / reference samples.
WER is corpus-level: the sum of word edits over the sum of reference words.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from djepa_core.audio_io import resample
from djepa_core.data.ljspeech import LJSpeech

RECOGNIZER_RATE = 16000


def words(text: str) -> list[str]:
    """Lower-case words of `text` for scoring: hyphens split words, other punctuation is dropped."""
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions) between two word sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER: sum of word edit distances / sum of reference words (texts are split by `words`)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references for {len(hyps)} hypotheses")
    n = sum(len(words(r)) for r in refs)
    if n == 0:
        raise ValueError("the references hold no words")
    return sum(edit_distance(words(r), words(h)) for r, h in zip(refs, hyps, strict=True)) / n


def length_aligned_l1(mel: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |mel - reference| of log-mels [80, T1] and [80, T2], `mel` resampled linearly to T2 frames."""
    if mel.dim() != 2 or reference.dim() != 2 or mel.shape[0] != reference.shape[0]:
        raise ValueError(f"need two [bands, frames] mels, got {tuple(mel.shape)} and {tuple(reference.shape)}")
    aligned = torch.nn.functional.interpolate(mel[None].float(), size=reference.shape[1], mode="linear",
                                              align_corners=True)[0]
    return float((aligned - reference.float()).abs().mean())


def bigram_arpa(sentences: Iterable[str], discount: float = 0.5) -> str:
    """A bigram language model (ARPA text) of `sentences`: absolute discounting with back-off to
    add-one unigrams; sentence marks <s> and </s>."""
    uni: Counter[str] = Counter()
    bi: Counter[tuple[str, str]] = Counter()
    for s in sentences:
        ws = ["<s>", *words(s), "</s>"]
        uni.update(ws)
        bi.update(pairwise(ws))
    vocab = sorted(uni)
    total = sum(c + 1 for w, c in uni.items() if w != "<s>")
    p_uni = {w: (uni[w] + 1) / total for w in vocab}
    followers: dict[str, list[tuple[str, int]]] = {}
    for (a, b), c in bi.items():
        followers.setdefault(a, []).append((b, c))
    p_bi: dict[tuple[str, str], float] = {}
    backoff: dict[str, float] = {}
    for a, nexts in followers.items():
        ca = sum(c for _, c in nexts)
        for b, c in nexts:
            p_bi[(a, b)] = (c - discount) / ca
        left = discount * len(nexts) / ca
        rest = 1.0 - sum(p_uni[b] for b, _ in nexts)
        backoff[a] = left / max(rest, 1e-9)
    lines = ["\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={len(p_bi)}", "", "\\1-grams:"]
    for w in vocab:
        lp = -99.0 if w == "<s>" else math.log10(p_uni[w])
        bo = f"\t{math.log10(backoff[w]):.4f}" if w in backoff else ""
        lines.append(f"{lp:.4f}\t{w}{bo}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.4f}\t{a} {b}" for (a, b), p in sorted(p_bi.items())]
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("speech evaluation needs pocketsphinx: pip install 'djepa[speech-eval]'") from e
    return pocketsphinx


def dictionary_subset(vocabulary: Iterable[str]) -> str:
    """The lines of pocketsphinx's English dictionary (in its wheel) for `vocabulary`, variants included.
    Decoding with a dictionary restricted to the language model's words starts in milliseconds instead of
    seconds (the full 130k-word dictionary is otherwise expanded against the LM)."""
    ps = _pocketsphinx()
    wanted = set(vocabulary)
    path = Path(ps.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    return "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                   if re.sub(r"\(\d+\)$", "", line.split(" ", 1)[0]) in wanted)


class Recognizer:
    """pocketsphinx (English model from its wheel) on 16 kHz audio; `lm`: an ARPA file or None (generic);
    `dictionary`: a pronunciation dictionary file (default the wheel's)."""

    def __init__(self, lm: str | Path | None = None, dictionary: str | Path | None = None) -> None:
        ps = _pocketsphinx()
        kwargs: dict[str, Any] = {"samprate": RECOGNIZER_RATE, "loglevel": "FATAL"}
        if lm is not None:
            kwargs["lm"] = str(lm)
        if dictionary is not None:
            kwargs["dict"] = str(dictionary)
        self.decoder = ps.Decoder(**kwargs)

    def transcribe(self, audio: torch.Tensor, sample_rate: int) -> str:
        """Words heard in mono `audio` [N] (float, about [-1, 1])."""
        x = audio.detach().float().flatten().cpu()
        if sample_rate != RECOGNIZER_RATE:
            x = resample(x, sample_rate, RECOGNIZER_RATE)
        peak = float(x.abs().max()) if x.numel() else 0.0
        if peak > 0:
            x = x * (0.9 / peak)  # the recognizer's features assume a normal recording level
        pcm = (x.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return str(hyp.hypstr) if hyp is not None else ""


@dataclass
class SpeechEvalRow:
    id: str
    text: str
    heard_generated: str
    heard_reference: str
    heard_vocoded: str
    mel_l1: float
    duration_ratio: float


def corpus_recognizer(corpus: str | Path, lm: str = "corpus", workdir: Path | None = None) -> Recognizer:
    """The recognizer of the evaluation: `lm` "corpus" (bigram of the training split) or "generic"."""
    if lm == "generic":
        return Recognizer(None)
    if lm != "corpus":
        raise ValueError(f"lm must be 'corpus' or 'generic', got {lm!r}")
    train = LJSpeech(corpus, "train", check_files=False)
    folder = workdir or Path(tempfile.mkdtemp(prefix="djepa-lm-"))
    texts = [u.normalized for u in train.items]
    path = folder / "corpus_bigram.arpa"
    path.write_text(bigram_arpa(texts))
    dictionary = folder / "corpus.dict"
    dictionary.write_text(dictionary_subset({w for t in texts for w in words(t)}))
    return Recognizer(path, dictionary)


def evaluate_speech(generator: Any, corpus: str | Path, sentences: int = 40, seed: int = 0,
                    recognizer: Recognizer | None = None, lm: str = "corpus", batch_size: int = 8,
                    vocoded_reference: bool = True, settings_overrides: dict[str, Any] | None = None,
                    log: Any = None) -> dict[str, Any]:
    """The measures of the module docstring on the first `sentences` held-out utterances (seed i = seed + i).
    `generator`: a SpeechGenerator. Returns a JSON-ready report (per-utterance rows included)."""
    test = LJSpeech(corpus, "test")
    if len(test) == 0:
        raise ValueError(f"{corpus} has no held-out utterances")
    n = min(sentences, len(test))
    rec = recognizer or corpus_recognizer(corpus, lm)
    tok = generator.tokenizer
    rate = generator.sample_rate
    settings = generator.settings(**{k: v for k, v in (settings_overrides or {}).items() if v is not None})
    rows: list[SpeechEvalRow] = []
    gen_seconds = 0.0
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        texts = [test.items[i].normalized for i in idx]
        t0 = time.monotonic()
        audios = generator.generate(texts, seeds=[seed + i for i in idx], settings=settings)
        gen_seconds += time.monotonic() - t0
        for i, audio in zip(idx, audios, strict=True):
            ref = test.audio(i)
            with torch.no_grad():
                ref_mel = tok.mel(ref[None].to(generator.device))[0].cpu()
                gen_mel = tok.mel(audio[None].to(generator.device))[0].cpu()
                vocoded = (tok.vocode(ref_mel[None].to(generator.device), generator=torch.Generator().manual_seed(0))[0]
                           if vocoded_reference else None)
            rows.append(SpeechEvalRow(
                id=test.items[i].id, text=texts[idx.index(i)],
                heard_generated=rec.transcribe(audio, rate), heard_reference=rec.transcribe(ref, rate),
                heard_vocoded=rec.transcribe(vocoded, rate) if vocoded is not None else "",
                mel_l1=length_aligned_l1(gen_mel, ref_mel), duration_ratio=audio.numel() / max(1, ref.numel())))
        if log is not None:
            log(f"{len(rows)}/{n} utterances")
    refs = [r.text for r in rows]
    wer_gen = word_error_rate(refs, [r.heard_generated for r in rows])
    wer_ref = word_error_rate(refs, [r.heard_reference for r in rows])
    report: dict[str, Any] = {
        "sentences": n, "seed": seed, "lm": lm,
        "settings": {k: getattr(settings, k) for k in ("num_steps", "cfg_scale", "temperature", "head_steps")},
        "wer_generated": wer_gen, "wer_reference": wer_ref,
        "wer_ratio": wer_gen / wer_ref if wer_ref > 0 else math.inf,
        "mel_l1": sum(r.mel_l1 for r in rows) / n,
        "duration_ratio_mean": sum(r.duration_ratio for r in rows) / n,
        "duration_ratio_min": min(r.duration_ratio for r in rows),
        "duration_ratio_max": max(r.duration_ratio for r in rows),
        "generate_seconds": gen_seconds,
    }
    if vocoded_reference:
        wer_voc = word_error_rate(refs, [r.heard_vocoded for r in rows])
        report["wer_vocoded_reference"] = wer_voc
    report["meets_target"] = bool(report["wer_ratio"] <= 1.5)
    report["rows"] = [r.__dict__ for r in rows]
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"held-out sentences: {report['sentences']}  (recognizer LM: {report['lm']}, seed {report['seed']})",
             f"{'audio':<34}{'WER':>8}",
             f"{'reference recording':<34}{report['wer_reference']:>8.3f}"]
    if "wer_vocoded_reference" in report:
        lines.append(f"{'reference mel + Griffin-Lim':<34}{report['wer_vocoded_reference']:>8.3f}")
    lines += [f"{'generated':<34}{report['wer_generated']:>8.3f}",
              f"WER ratio generated / reference: {report['wer_ratio']:.2f} (target <= 1.5: "
              f"{'met' if report['meets_target'] else 'NOT met'})",
              f"mel L1 (length-aligned, log-mel): {report['mel_l1']:.3f}",
              f"duration ratio: mean {report['duration_ratio_mean']:.3f} "
              f"(min {report['duration_ratio_min']:.3f}, max {report['duration_ratio_max']:.3f})"]
    return "\n".join(lines)
