"""Narration is real speech from the offline engine, written whole."""

from __future__ import annotations

import array
import wave
from pathlib import Path

import pytest

from clipgate.errors import SpeechError
from clipgate.speech import speak_to_wav


def _samples(path: Path) -> tuple[array.array[int], int]:
    with wave.open(str(path)) as spoken:
        assert (spoken.getnchannels(), spoken.getsampwidth()) == (1, 2)
        frames = spoken.readframes(spoken.getnframes())
        return array.array("h", frames), spoken.getframerate()


def test_speech_is_voiced_and_varies_like_words(tmp_path: Path) -> None:
    """The WAV has sound, and its loudness rises and falls as syllables do (not a tone)."""
    path = speak_to_wav("The quick brown fox jumps over the lazy dog.", tmp_path / "a.wav")
    samples, rate = _samples(path)
    assert len(samples) / rate > 1.0
    window = rate // 50
    loudness = [
        max(abs(sample) for sample in samples[start : start + window])
        for start in range(0, len(samples) - window, window)
    ]
    assert max(loudness) > 3000
    quiet = sum(1 for level in loudness if level < max(loudness) * 0.1)
    loud = sum(1 for level in loudness if level > max(loudness) * 0.5)
    assert quiet >= 3
    assert loud >= 10


def test_longer_text_takes_longer(tmp_path: Path) -> None:
    """More words make more audio: the engine speaks the text it was given."""
    short, _rate = _samples(speak_to_wav("Hello.", tmp_path / "short.wav"))
    long, _ = _samples(
        speak_to_wav("Hello. This sentence is a good deal longer than that.", tmp_path / "l.wav")
    )
    assert len(long) > 3 * len(short)


def test_empty_text_is_refused(tmp_path: Path) -> None:
    """Nothing to say is a clear error, and no file is left behind."""
    with pytest.raises(SpeechError, match="no narration text"):
        speak_to_wav("   ", tmp_path / "empty.wav")
    assert list(tmp_path.iterdir()) == []
