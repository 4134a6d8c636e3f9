"""Build an offline speech corpus in the LJSpeech-1.1 layout with espeak-ng (`djepa data speech`).

Sentences come from a seeded template grammar over word lists, so they are varied English with the
things the text normalizer handles (years, dates, ordinals, amounts of money, percentages, decimals,
clock times, titles such as Mr. and Dr., "St."). `metadata.csv` holds `id|raw text|normalized text`;
the audio reads the normalized text, spoken by one espeak-ng voice (default `en-us`, 160 words per
minute, pitch 50), which writes 22,050 Hz 16-bit mono WAV. Same seed and settings, same corpus
(espeak-ng is deterministic). `corpus.json` records the settings and the espeak-ng version.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from djepa_core.data.espeak_align import ALIGNMENTS, PHONEME_ALIGNMENTS, align_corpus, espeak_library_available
from djepa_core.text.normalize import normalize

_TITLES = ["Mr.", "Mrs.", "Dr.", "Capt.", "Gen.", "Prof.", "Col.", "Rev.", "Sgt."]
_SURNAMES = ["Smith", "Brown", "Walker", "Turner", "Harris", "Clarke", "Bennett", "Hughes", "Foster", "Palmer",
             "Morgan", "Reed", "Fletcher", "Gray", "Dawson", "Porter", "Hale", "Marsh", "Oliver", "Warren",
             "Sutton", "Barnes", "Lawson", "Griffin", "Holloway", "Pierce", "Crawford", "Wheeler", "Nash", "Rowe"]
_FIRST = ["John", "Mary", "Thomas", "Anne", "William", "Margaret", "George", "Helen", "Henry", "Alice", "James",
          "Ellen", "Robert", "Sarah", "Edward", "Grace", "Arthur", "Lucy", "Walter", "Emma"]
_PLACES = ["London", "Boston", "Dallas", "the city", "the harbor", "the village", "the capital", "the old mill",
           "the river bank", "the northern hills", "the court house", "the printing office", "the railway station",
           "the market square", "the county jail", "the school", "the library", "the hospital", "Chicago",
           "New Orleans", "the coast", "the valley"]
_STREETS = ["Baker", "Elm", "Market", "Church", "High", "Bridge", "Mill", "King", "Water", "Union"]
_SAINTS = ["Paul", "James", "Louis", "Mary", "Andrew", "George"]
_ADJ = ["old", "new", "small", "large", "quiet", "famous", "careful", "strange", "heavy", "bright", "narrow",
        "ancient", "modern", "simple", "wooden", "dark", "busy", "empty", "early", "late", "wealthy", "poor",
        "honest", "clever", "gentle", "rough", "silent", "public", "private", "local"]
_NOUNS = ["book", "letter", "report", "house", "ship", "bridge", "machine", "printer", "window", "garden", "clock",
          "road", "engine", "river", "paper", "press", "record", "map", "lamp", "table", "wagon", "horse",
          "church", "tower", "office", "station", "factory", "ledger", "notice", "painting"]
_PLURALS = ["men", "women", "children", "soldiers", "workers", "books", "letters", "pages", "ships", "houses",
            "horses", "copies", "prisoners", "visitors", "sailors", "students", "boxes", "trees", "coins", "lamps"]
_VERBS_PAST = ["found", "built", "printed", "sold", "carried", "opened", "closed", "painted", "repaired",
               "described", "examined", "bought", "moved", "visited", "studied", "wrote", "read", "watched",
               "signed", "delivered", "reported", "returned", "measured", "counted", "discovered"]
_VERBS_BASE = ["find", "build", "print", "sell", "carry", "open", "close", "paint", "repair", "describe", "examine",
               "buy", "move", "visit", "study", "write", "read", "watch", "sign", "deliver"]
_ADVERBS = ["slowly", "quickly", "carefully", "quietly", "suddenly", "finally", "again", "often", "never",
            "perhaps", "certainly", "clearly"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_CONJ = ["and", "but", "while", "because", "although", "so", "after", "before"]


class _Grammar:
    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def pick(self, items: list[str]) -> str:
        return self.r.choice(items)

    def person(self) -> str:
        k = self.r.random()
        if k < 0.45:
            return f"{self.pick(_TITLES)} {self.pick(_SURNAMES)}"
        if k < 0.75:
            return f"{self.pick(_FIRST)} {self.pick(_SURNAMES)}"
        return f"the {self.pick(_ADJ)} {self.pick(['clerk', 'printer', 'judge', 'doctor', 'officer', 'teacher'])}"

    def thing(self) -> str:
        return f"the {self.pick(_ADJ)} {self.pick(_NOUNS)}" if self.r.random() < 0.6 else f"the {self.pick(_NOUNS)}"

    def place(self) -> str:
        k = self.r.random()
        if k < 0.15:
            return f"{self.pick(_STREETS)} St."
        if k < 0.25:
            return f"St. {self.pick(_SAINTS)}"
        return self.pick(_PLACES)

    def year(self) -> str:
        return str(self.r.choice([self.r.randint(1450, 1999), self.r.randint(1800, 1950), self.r.randint(2000, 2030)]))

    def date(self) -> str:
        day = self.r.randint(1, 28)
        suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}.get(day, "th")
        if self.r.random() < 0.5:
            return f"on the {day}{suffix} of {self.pick(_MONTHS)}, {self.year()}"
        return f"on {self.pick(_MONTHS)} {day}, {self.year()}"

    def count(self) -> str:
        k = self.r.random()
        if k < 0.5:
            return str(self.r.randint(2, 99))
        if k < 0.8:
            return str(self.r.randint(100, 999))
        return f"{self.r.randint(1, 99)},{self.r.randint(0, 999):03d}"

    def money(self) -> str:
        k = self.r.random()
        cur = self.r.choice(["$", "$", "£"])
        if k < 0.4:
            return f"{cur}{self.r.randint(1, 500)}"
        if k < 0.8:
            return f"{cur}{self.r.randint(0, 99)}.{self.r.randint(1, 99):02d}"
        return f"{cur}{self.r.randint(2, 40)} {self.r.choice(['thousand', 'million'])}"

    def clause(self) -> str:
        r = self.r
        k = r.randrange(10)
        if k == 0:
            return f"{self.person()} {self.pick(_VERBS_PAST)} {self.thing()} near {self.place()} in {self.year()}"
        if k == 1:
            return f"{self.date()}, {self.person()} {self.pick(_VERBS_PAST)} {self.count()} {self.pick(_PLURALS)}"
        if k == 2:
            return f"about {self.count()} {self.pick(_PLURALS)} were {self.pick(_VERBS_PAST)} at {self.place()}"
        if k == 3:
            return f"{self.thing()} cost {self.money()}, which was {r.randint(2, 90)}% more than before"
        if k == 4:
            return f"{self.person()} said that {self.thing()} of {self.place()} was {self.pick(_ADJ)}"
        if k == 5:
            return (f"at {r.randint(1, 12)}:{r.choice(['00', '15', '30', '45', '05'])} the {self.pick(_PLURALS)} "
                    f"{self.pick(_ADVERBS)} {self.pick(_VERBS_PAST)} {self.thing()}")
        if k == 6:
            return (f"the {r.randint(1, 40)}th {self.pick(_NOUNS)} was {r.randint(1, 20)}.{r.randint(1, 9)} "
                    "feet long")  # "th" is corrected by _fix_ordinals
        if k == 7:
            return f"{self.person()} {self.pick(_ADVERBS)} {self.pick(_VERBS_PAST)} {self.thing()} for {self.money()}"
        if k == 8:
            return f"between {self.year()} and {self.year()} {self.thing()} stood in {self.place()}"
        return f"{self.thing()} was {self.pick(_ADJ)} and {self.pick(_ADJ)}, as {self.person()} wrote"

    def question(self) -> str:
        return f"did {self.person()} {self.pick(_VERBS_BASE)} {self.thing()} before {self.year()}?"

    def sentence(self) -> str:
        r = self.r
        k = r.random()
        if k < 0.1:
            s = self.question()
        elif k < 0.45:
            s = f"{self.clause()}, {self.pick(_CONJ)} {self.clause()}."
        else:
            s = f"{self.clause()}{r.choice(['.', '.', '.', '!', ';'])}"
            if s.endswith(";"):
                s = f"{s} {self.clause()}."
        s = _fix_ordinals(s).replace("..", ".")
        return s[0].upper() + s[1:]


def _fix_ordinals(s: str) -> str:
    import re

    def fix(m: re.Match[str]) -> str:
        n = int(m.group(1))
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"

    return re.sub(r"\b(\d+)th\b", fix, s)


def generate_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct raw sentences (digits, abbreviations and all), a pure function of (n, seed)."""
    if n < 1:
        raise ValueError(f"need at least one sentence, got {n}")
    g = _Grammar(random.Random(seed))
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"the grammar ran out of distinct sentences after {len(out)}")
        s = g.sentence()
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def espeak_version() -> str | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> None:
    """Speak `text` into a 22,050 Hz WAV at `path` with espeak-ng (text on stdin, never parsed as options)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("building a speech corpus needs the espeak-ng program (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), "--stdin"],
                   input=text, text=True, check=True, capture_output=True, timeout=120)


def build_corpus(out: str | Path, sentences: int, seed: int = 0, voice: str = "en-us", speed: int = 160,
                 pitch: int = 50, workers: int = 2, force: bool = False,
                 progress: Callable[[int, int], None] | None = None, align: bool = True) -> Path:
    """Write `out/metadata.csv`, `out/wavs/*.wav` and `out/corpus.json`; returns `out`. With `align` (and
    espeak-ng's library installed), also `out/alignments.csv`: each word's measured start and end in the
    recording, and `out/phonemes.csv`: the spoken phonemes and their measured durations
    (`data/espeak_align.py`; `corpus.json` counts the aligned utterances).

    Ids are `DJ<chapter>-<index>` (500 sentences per chapter), e.g. DJ001-0001, as LJSpeech's.
    """
    out = Path(out)
    if (out / "metadata.csv").exists() and not force:
        raise ValueError(f"{out}/metadata.csv exists; pass force=True (--force) to overwrite the corpus")
    version = espeak_version()
    if version is None:
        raise RuntimeError("building a speech corpus needs the espeak-ng program (apt-get install espeak-ng)")
    wavs = out / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    texts = generate_sentences(sentences, seed)
    rows = []
    for i, raw in enumerate(texts):
        uid = f"DJ{i // 500 + 1:03d}-{i % 500 + 1:04d}"
        rows.append((uid, raw, normalize(raw)))
    done = 0

    def job(row: tuple[str, str, str]) -> None:
        synthesize(row[2], wavs / f"{row[0]}.wav", voice, speed, pitch)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in pool.map(job, rows):
            done += 1
            if progress is not None:
                progress(done, len(rows))
    tmp = out / "metadata.csv.tmp"
    tmp.write_text("".join(f"{uid}|{raw}|{norm}\n" for uid, raw, norm in rows), encoding="utf-8")
    tmp.replace(out / "metadata.csv")
    info = {"sentences": sentences, "seed": seed, "voice": voice, "speed": speed, "pitch": pitch,
            "sample_rate": 22050, "espeak_ng": version, "format": "LJSpeech-1.1 layout: id|text|normalized text"}
    if align and espeak_library_available():
        aligned, missed = align_corpus(out, voice, speed, pitch, workers=workers)
        info["alignments"] = {"file": ALIGNMENTS, "phonemes": PHONEME_ALIGNMENTS, "aligned": aligned,
                              "left_out": missed}
    (out / "corpus.json").write_text(json.dumps(info, indent=2) + "\n")
    return out
