"""IPA phonemes through espeak-ng (optional).

Two backends, the first available wins: the `espeak-ng` program (Debian: `apt-get install espeak-ng`), run as
`espeak-ng -q --ipa`; or the espeak-ng shared library through ctypes (`espeak_TextToPhonemes`, IPA mode),
found in PyPI's `espeakng-loader` wheel (library and data bundled: no apt needed) or installed on the
system. espeak-ng drops punctuation and splits its output at clauses, so the text is split at clause
punctuation first, each clause is phonemized on its own, and the punctuation is put back between the
phonemized clauses: "hello, world." -> "həlˈoʊ, wˈɜːld."
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
import threading
from typing import Literal

_CLAUSE_RE = re.compile(r"([,.;:!?]+)")
_LANG_SWITCH_RE = re.compile(r"\([a-z-]+\)")
Backend = Literal["auto", "program", "library"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT: report errors instead of exiting the process


def espeak_binary() -> str | None:
    """Path of the espeak-ng executable, or None."""
    return shutil.which("espeak-ng")


def _library_paths() -> tuple[str | None, str | None]:
    """(shared library, data folder or None for the library's default) of espeak-ng, if any."""
    try:
        import espeakng_loader

        return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())
    except ImportError:
        return ctypes.util.find_library("espeak-ng"), None


class _Library:
    """The espeak-ng library, initialized once; calls serialized (the library keeps global state)."""

    _instance: _Library | None = None
    _lock = threading.Lock()

    def __init__(self, path: str, data: str | None) -> None:
        lib = ctypes.cdll.LoadLibrary(path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None, _DONT_EXIT) < 0:
            raise RuntimeError(f"espeak-ng library {path} failed to initialize (data {data})")
        self.lib = lib
        self.voice: str | None = None

    @classmethod
    def get(cls) -> _Library:
        with cls._lock:
            if cls._instance is None:
                path, data = _library_paths()
                if path is None:
                    raise RuntimeError("phonemes need espeak-ng: apt-get install espeak-ng, or pip install "
                                       "espeakng-loader; use the default character symbols otherwise")
                cls._instance = cls(path, data)
            return cls._instance

    def phonemize(self, clause: str, voice: str) -> str:
        with self._lock:
            if voice != self.voice:
                if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise ValueError(f"espeak-ng has no voice {voice!r}")
                self.voice = voice
            buf = ctypes.create_string_buffer(clause.encode("utf-8"))
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            parts = []
            while ptr.value:
                out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
                if out:
                    parts.append(out.decode("utf-8").strip())
            return " ".join(p for p in parts if p)


def phonemes_available() -> bool:
    return espeak_binary() is not None or _library_paths()[0] is not None


def _run_program(lines: list[str], voice: str) -> list[str]:
    exe = espeak_binary()
    if exe is None:
        raise RuntimeError("the espeak-ng program is not installed (apt-get install espeak-ng)")
    out = subprocess.run([exe, "-q", "--ipa", "-v", voice], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True, timeout=60)
    return [_LANG_SWITCH_RE.sub("", ln).strip() for ln in out.stdout.splitlines() if ln.strip()]


def _phonemize_clauses(clauses: list[str], voice: str, backend: Backend) -> list[str]:
    if backend == "program" or (backend == "auto" and espeak_binary() is not None):
        lines = [c + "." for c in clauses]
        ipa = _run_program(lines, voice)
        if len(ipa) != len(lines):  # espeak split or merged a clause: one clause per call
            ipa = [" ".join(_run_program([line], voice)) for line in lines]
        return ipa
    lib = _Library.get()
    return [_LANG_SWITCH_RE.sub("", lib.phonemize(c, voice)).strip() for c in clauses]


def phonemize(text: str, voice: str = "en-us", backend: Backend = "auto") -> str:
    """Normalized text -> IPA with the clause punctuation kept."""
    parts = _CLAUSE_RE.split(text)
    clauses = [p.strip() for p in parts[0::2]]
    puncts = [*parts[1::2], ""]
    spoken = [i for i, c in enumerate(clauses) if c.strip("'- ")]
    if not spoken:
        return ""
    ipa = _phonemize_clauses([clauses[i] for i in spoken], voice, backend)
    result = dict(zip(spoken, ipa, strict=True))
    out = []
    for i, p in enumerate(puncts):
        if i in result:
            out.append(result[i])
        if p:
            out.append(p[0])
            out.append(" ")
    return "".join(out).strip()
