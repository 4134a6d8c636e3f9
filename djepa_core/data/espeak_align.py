"""Measured text-audio alignment of an espeak-ng corpus: when each word starts and ends in the recording.

espeak-ng's library (libespeak-ng.so.1, through ctypes: the package has no Python binding) reports, in
its retrieval mode, word events (the word's character position in the input text, its start in ms) and
phoneme events (pauses are the phonemes "_" and "_:"), next to the audio samples. `synthesize` runs it
with the corpus's voice, speed and pitch and the CLI's flags (end pause on, `[[ ]]` phonemes), and the
samples are exactly the ones `espeak-ng -w` writes (checked per utterance by `align_corpus`: same sample
count, same samples). A word ends at the first pause phoneme after its start, else where the next word
starts; the characters between words (spaces, punctuation) take the pause between them.

File: `alignments.csv` beside `metadata.csv` (the LJSpeech layout stays valid: loaders that do not know
the file ignore it), one line per aligned utterance, `id|total samples|pos:start:end pos:start:end ...`
with pos the word's first character (0-based, in the normalized text, the third metadata column: what
espeak-ng spoke) and start/end in ms. `char_durations` turns a line into one duration per character.

Phonemes: the library runs in IPA mode (phoneme events named by their IPA; pauses then have no name, nor
has en's in-word syllable break, told apart by `pause_events`). `phoneme_times` reads the spoken symbol
sequence from the events (phonemes, " " between words, a pause as its clause punctuation) and
`phoneme_durations` gives each symbol (one character of the PHONEMES set) its time. File: `phonemes.csv`
beside `metadata.csv`, `id|total samples|symbols|ms ms ...` (one duration per symbol, summing to the
recording). At sampling `spoken_phonemes` speaks the text again (the audio discarded) for the same symbols.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ALIGNMENTS = "alignments.csv"
PHONEME_ALIGNMENTS = "phonemes.csv"
_LIB_NAME = "libespeak-ng.so.1"
_EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 1, 5, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS, _INITIALIZE_PHONEME_IPA = 0x0001, 0x0002  # phoneme events named in IPA
_CHARS_AUTO, _PHONEMES, _ENDPAUSE = 0, 0x100, 0x1000
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
_WORD_BREAK = set(" ,.;:!?")  # characters that end a word's letters (apostrophes and hyphens stay inside)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h (API revision 12)
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordTime:
    pos: int  # first character of the word in the spoken text, 0-based
    start: float  # ms
    end: float  # ms (>= start)


@dataclass(frozen=True)
class Synthesis:
    samples: list[int]  # 16-bit PCM at `sample_rate`
    sample_rate: int
    words: list[WordTime]
    events: list[tuple[int, int, float, str]] = field(default_factory=list)  # (type, text pos 1-based, ms, IPA)

    @property
    def total_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.sample_rate


class _Espeak:
    """The library, initialized once per process (synchronous retrieval mode, phoneme events on)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(_LIB_NAME)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = int(self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                                  _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA))
        if self.rate <= 0:
            raise RuntimeError("espeak-ng's library failed to initialize (espeak-ng-data missing?)")
        self._samples: list[int] = []
        self._events: list[tuple[int, int, float, str]] = []  # (type, text position 1-based, ms, phoneme)
        self._callback = _CALLBACK(self._on_audio)  # kept alive: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], n: int,
                  events: ctypes._Pointer[_Event]) -> int:
        if wav and n > 0:
            self._samples.extend(wav[:n])
        i = 0
        while events[i].type != 0:
            e = events[i]
            name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
            self._events.append((e.type, e.text_position, float(e.audio_position), name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, speed: int, pitch: int) -> Synthesis:
        data = text.encode("utf-8")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, speed, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            self._samples, self._events = [], []
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                        _CHARS_AUTO | _PHONEMES | _ENDPAUSE, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed ({err})")
            samples, events = self._samples, self._events
        total = 1000.0 * len(samples) / self.rate
        return Synthesis(samples, self.rate, word_times(events, total), events)


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def espeak_library_available() -> bool:
    try:
        ctypes.CDLL(_LIB_NAME)
    except OSError:
        return False
    return True


def synthesize(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> Synthesis:
    """Speak `text` with espeak-ng's library: the samples and each word's start and end (ms). The first call
    of a process gives exactly the samples of `espeak-ng -w` (same settings); later calls differ slightly
    (the library keeps state: word times within ~1 ms, the audio up to ~50 ms longer or shorter), hence
    `align_corpus`'s fresh process per utterance."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            try:
                _ENGINE = _Espeak()
            except OSError as e:
                raise RuntimeError(f"measured alignments and phoneme-event symbols need espeak-ng's library "
                                   f"({_LIB_NAME}; `make sysdeps` or apt-get install espeak-ng): {e}") from e
    return _ENGINE.synthesize(text, voice, speed, pitch)


def pause_events(events: Sequence[tuple[int, int, float, str]]) -> list[bool]:
    """Which events are pause phonemes. By name ("_", "_:" ...) without IPA; in IPA mode pauses have no name,
    and neither has espeak-ng's in-word syllable break (en: ";", as in "sixty-eight"), which is told apart by
    what follows: a pause is not followed by another phoneme of its word (the next word, phoneme or end
    event is not a named phoneme)."""
    out = [False] * len(events)
    for i, (kind, _, _, name) in enumerate(events):
        if kind != _EVENT_PHONEME:
            continue
        if name.startswith("_"):
            out[i] = True
        elif not name:
            nxt = next((e for e in events[i + 1:] if e[0] in (_EVENT_WORD, _EVENT_PHONEME, _EVENT_END)), None)
            out[i] = nxt is None or not (nxt[0] == _EVENT_PHONEME and nxt[3])
    return out


def word_times(events: Sequence[tuple[int, int, float, str]], total_ms: float) -> list[WordTime]:
    """Word starts from word events (text position 1-based -> 0-based); a word ends at the first pause
    phoneme ("_...") strictly after its start and no later than the next word's start (else at that start;
    the last word: else at the end of the audio). Words out of order are dropped."""
    starts: list[tuple[int, float]] = []
    for kind, pos, ms, _ in events:
        if kind == _EVENT_WORD and pos >= 1 and (not starts or pos - 1 > starts[-1][0]):
            starts.append((pos - 1, max(ms, starts[-1][1] if starts else 0.0)))
    pauses = sorted(e[2] for e, pause in zip(events, pause_events(events), strict=True) if pause)
    out = []
    for k, (pos, start) in enumerate(starts):
        limit = starts[k + 1][1] if k + 1 < len(starts) else total_ms
        end = next((p for p in pauses if start < p <= limit), limit)
        out.append(WordTime(pos, start, min(max(end, start), total_ms)))
    return out


def char_durations(text: str, words: Sequence[WordTime], total_ms: float) -> list[float]:
    """One duration (ms) per character of `text`, summing to `total_ms`: a word's characters (up to its
    segment's last letter: espeak-ng reports some word pairs as one word) share [start, end) equally, the
    characters after them up to the next word (spaces, punctuation) share the pause to its
    start, the characters before the first word share the leading silence (or the first word starts at 0),
    those after the last word the final pause (or the last word takes it). Raises ValueError when the
    words do not fit the text."""
    n = len(text)
    if not words:
        raise ValueError("no word timings")
    if any(w.pos >= n for w in words) or any(b.pos <= a.pos or b.start < a.start for a, b in itertools.pairwise(words)):
        raise ValueError(f"word timings do not fit a text of {n} characters")
    out = [0.0] * n

    def share(lo: int, hi: int, ms: float) -> bool:
        if hi <= lo:
            return False
        for i in range(lo, hi):
            out[i] += max(ms, 0.0) / (hi - lo)
        return True

    lead_end = words[0].start
    if not share(0, words[0].pos, lead_end):
        out[0] += max(lead_end, 0.0)
    for k, w in enumerate(words):
        nxt = words[k + 1].pos if k + 1 < len(words) else n
        letters_end = nxt  # after the segment's last letter (espeak-ng may report "that the" as one word)
        while letters_end > w.pos + 1 and text[letters_end - 1] in _WORD_BREAK:
            letters_end -= 1
        gap_end_ms = words[k + 1].start if k + 1 < len(words) else total_ms
        share(w.pos, letters_end, w.end - w.start)
        if not share(letters_end, nxt, gap_end_ms - w.end):
            out[letters_end - 1] += max(gap_end_ms - w.end, 0.0)
    s = sum(out)
    if s <= 0:
        raise ValueError("word timings span no time")
    return [d * total_ms / s for d in out]


_PAUSE_MARKS = ",.;:!?"  # a pause takes the first of these in its word's stretch of text, else " "


@dataclass(frozen=True)
class PhonemeTime:
    symbol: str  # one phoneme's IPA (maybe several characters: "oʊ", "tʃ"), " " between words, or a pause
    start: float  # ms


def phoneme_times(events: Sequence[tuple[int, int, float, str]], text: str) -> list[PhonemeTime]:
    """The spoken symbol sequence with start times, from IPA phoneme events and word events in time order:
    each named phoneme event as is, an unnamed one inside a word (`pause_events`) as "-"; " " at each word
    event after the first (unless a pause precedes it);
    a pause (unnamed phoneme event; consecutive ones merged) as the first clause punctuation of its word's
    stretch of `text` (up to the next word event's position), or " " when there is none."""
    words = [pos - 1 for kind, pos, _, _ in events if kind == _EVENT_WORD and pos >= 1]
    out: list[PhonemeTime] = []
    k = -1
    for (kind, pos, ms, name), pause in zip(events, pause_events(events), strict=True):
        if kind == _EVENT_WORD and pos >= 1:
            k += 1
            if out and out[-1].symbol not in _PAUSE_MARKS and out[-1].symbol != " ":
                out.append(PhonemeTime(" ", ms))
        elif kind == _EVENT_PHONEME:
            if not pause:
                out.append(PhonemeTime(name or "-", ms))  # an unnamed phoneme inside a word: a syllable break
                continue
            if not out or out[-1].symbol in _PAUSE_MARKS:
                continue  # leading silence (goes to the first symbol) or the same pause again
            lo = words[k] if k >= 0 else 0
            hi = words[k + 1] if k + 1 < len(words) else len(text)
            mark = next((c for c in text[lo:hi] if c in _PAUSE_MARKS), " ")
            if out[-1].symbol == " ":  # a word gap turning into a pause keeps the gap's start
                out[-1] = PhonemeTime(mark, out[-1].start)
            else:
                out.append(PhonemeTime(mark, ms))
    return out


def phoneme_durations(times: Sequence[PhonemeTime], total_ms: float) -> tuple[str, list[float]]:
    """(symbols, one duration in ms per symbol, summing to `total_ms`): a phoneme lasts until the next one
    starts (the first also takes the leading silence, the last the rest of the audio), and its characters
    that are in the PHONEMES symbol set share its time equally (a phoneme with none gives its time to the
    previous symbol). Raises ValueError when nothing is left."""
    from djepa_core.text.symbols import PHONEMES

    symbols: list[str] = []
    ms: list[float] = []
    for i, t in enumerate(times):
        end = times[i + 1].start if i + 1 < len(times) else total_ms
        span = max(end - (0.0 if i == 0 else t.start), 0.0)
        chars = [c for c in t.symbol if c in PHONEMES.symbols[1:]]
        if not chars:
            if ms:
                ms[-1] += span
            continue
        symbols.extend(chars)
        ms.extend([span / len(chars)] * len(chars))
    if not symbols or sum(ms) <= 0:
        raise ValueError("no phoneme timings")
    scale = total_ms / sum(ms)
    return "".join(symbols), [d * scale for d in ms]


def spoken_phonemes(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> str:
    """The symbols (PHONEMES set) espeak-ng speaks for normalized `text`, as `phonemes.csv` records them
    for a corpus: the text is spoken by the library (the audio discarded) and its phoneme events read. The
    same sequence at training and at sampling; needs espeak-ng's library (RuntimeError otherwise)."""
    syn = synthesize(text, voice, speed, pitch)
    symbols, _ = phoneme_durations(phoneme_times(syn.events, text), syn.total_ms)
    return symbols


def format_phoneme_line(uid: str, synthesis: Synthesis, text: str) -> str:
    symbols, ms = phoneme_durations(phoneme_times(synthesis.events, text), synthesis.total_ms)
    return f"{uid}|{len(synthesis.samples)}|{symbols}|{' '.join(f'{d:.1f}' for d in ms)}\n"


@dataclass(frozen=True)
class PhonemeAlignment:
    samples: int  # length of the recording in samples
    symbols: str  # PHONEMES symbols, one character each
    ms: list[float]  # duration of each symbol


def read_phoneme_alignments(root: str | Path) -> dict[str, PhonemeAlignment]:
    """`root/phonemes.csv` as {id: PhonemeAlignment}; {} when the corpus has no such file."""
    path = Path(root) / PHONEME_ALIGNMENTS
    if not path.is_file():
        return {}
    out: dict[str, PhonemeAlignment] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            uid, samples, symbols, ms = line.split("|")
            durations = [float(v) for v in ms.split()]
            if len(durations) != len(symbols):
                raise ValueError(f"{len(symbols)} symbols, {len(durations)} durations")
            out[uid] = PhonemeAlignment(int(samples), symbols, durations)
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: expected 'id|samples|symbols|ms ms ...' ({e})") from e
    return out


def format_line(uid: str, synthesis: Synthesis) -> str:
    words = " ".join(f"{w.pos}:{w.start:.0f}:{w.end:.0f}" for w in synthesis.words)
    return f"{uid}|{len(synthesis.samples)}|{words}\n"


@dataclass(frozen=True)
class Alignment:
    samples: int  # length of the recording in samples
    words: list[WordTime]


def read_alignments(root: str | Path) -> dict[str, Alignment]:
    """`root/alignments.csv` as {id: Alignment}; {} when the corpus has no such file."""
    path = Path(root) / ALIGNMENTS
    if not path.is_file():
        return {}
    out: dict[str, Alignment] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            uid, samples, words = line.split("|")
            times = [tuple(float(v) for v in w.split(":")) for w in words.split()]
            out[uid] = Alignment(int(samples), [WordTime(int(p), s, e) for p, s, e in times])
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: expected 'id|samples|pos:start:end ...' ({e})") from e
    return out


def _align_one(args: tuple[str, str, str, str, int, int]) -> tuple[str, str] | None:
    """One utterance in a fresh process (see `align_corpus`): its alignments.csv and phonemes.csv lines, or
    None when the library's samples are not exactly the WAV's."""
    from array import array

    uid, text, wav, voice, speed, pitch = args
    syn = synthesize(text, voice, speed, pitch)
    if not syn.words or not Path(wav).is_file():
        return None
    count, rate, raw = _wav_samples(Path(wav))
    if count != len(syn.samples) or rate != syn.sample_rate or raw != array("h", syn.samples).tobytes():
        return None
    try:
        char_durations(text, syn.words, syn.total_ms)
        phonemes = format_phoneme_line(uid, syn, text)
    except ValueError:
        return None
    return format_line(uid, syn), phonemes


def _wav_samples(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getnframes(), w.getframerate(), w.readframes(w.getnframes())


def align_corpus(root: str | Path, voice: str = "en-us", speed: int = 160, pitch: int = 50, workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Write `root/alignments.csv` (word timings) and `root/phonemes.csv` (phoneme timings) for the corpus's
    utterances (metadata's normalized text, spoken again by the library with the corpus's settings); returns
    (aligned, left out). An utterance is aligned only when the library's samples equal its WAV's (same rate,
    count and values). Each utterance is spoken in a fresh process (a forkserver child, one task each): the
    library keeps state from one synthesis to the next (the second utterance of a process differs from the
    CLI's by up to ~50 ms of samples), while the CLI that wrote the WAVs starts fresh for each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from djepa_core.data.ljspeech import read_metadata

    root = Path(root)
    items = read_metadata(root)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    jobs = [(u.id, u.normalized, str(u.wav), voice, speed, pitch) for u in items]
    lines: list[str] = []
    phoneme_lines: list[str] = []
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx, max_tasks_per_child=1) as pool:
        for i, pair in enumerate(pool.map(_align_one, jobs, chunksize=1)):
            if pair is not None:
                lines.append(pair[0])
                phoneme_lines.append(pair[1])
            if progress is not None:
                progress(i + 1, len(items))
    for name, content in ((ALIGNMENTS, lines), (PHONEME_ALIGNMENTS, phoneme_lines)):
        tmp = root / (name + ".tmp")
        tmp.write_text("".join(content), encoding="utf-8")
        tmp.replace(root / name)
    return len(lines), len(items) - len(lines)
