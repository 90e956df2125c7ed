"""Offline speech: eSpeak NG, loaded from the espeakng-loader wheel through ctypes.

The library keeps global state and is not thread-safe, so every synthesis in a process
goes through one lock and one initialisation.
"""

from __future__ import annotations

import ctypes
import os
import threading
import wave
from pathlib import Path

import espeakng_loader

from clipgate.errors import SpeechError
from clipgate.ffmpeg import partial_path

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    def __init__(self, voice: str) -> None:
        library = ctypes.CDLL(espeakng_loader.get_library_path())
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        library.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise SpeechError(f"eSpeak NG failed to start (data at {data_path.decode()})")
        if library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechError(f"eSpeak NG has no voice {voice!r}")
        self._chunks: list[bytes] = []
        # Keep a reference: ctypes frees a callback that Python no longer holds.
        self._callback = _SYNTH_CALLBACK(self._collect)
        library.espeak_SetSynthCallback(self._callback)
        self._library = library

    def _collect(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if samples and count > 0:
            self._chunks.append(ctypes.string_at(samples, count * 2))
        return 0

    def synthesize(self, text: str) -> bytes:
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self._library.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise SpeechError(f"eSpeak NG could not speak the text (error {status})")
        return b"".join(self._chunks)


_lock = threading.Lock()
_engines: dict[str, _Engine] = {}


def speak_to_wav(text: str, output: Path, voice: str = "en-us") -> Path:
    """Speak `text` into a 16-bit mono WAV at `output`, written whole or not at all."""
    if not text.strip():
        raise SpeechError("there is no narration text to speak")
    with _lock:
        engine = _engines.get(voice) or _engines.setdefault(voice, _Engine(voice))
        pcm = engine.synthesize(text)
        sample_rate = engine.sample_rate
    if not pcm:
        raise SpeechError(f"eSpeak NG produced no audio for {text[:40]!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(output)
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    os.replace(partial, output)
    return output
