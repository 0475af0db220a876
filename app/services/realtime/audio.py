"""The audio side of a Realtime session: the input buffer (bounded), a simple server VAD over it, and
conversions between the session's wire formats (PCM16 24 kHz, G.711 µ-law/A-law 8 kHz) and the WAV the
transcription model reads or the PCM the speech model writes.

The VAD is an energy gate, not a model: 20 ms frames whose RMS passes a level set by `threshold` are
speech; `silence_duration_ms` of quieter frames after speech ends the turn. `semantic_vad` is the same
gate with a fixed silence of 500 ms.
"""
from __future__ import annotations

import io
import warnings
import wave

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 codecs and resampling (standard library up to 3.12)

from app.core.errors import invalid_request

RATE = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
WIDTH = {"audio/pcm": 2, "audio/pcmu": 1, "audio/pcma": 1}


def seconds(data_len: int, fmt: str) -> float:
    return data_len / (RATE[fmt] * WIDTH[fmt])


def to_pcm16(data: bytes, fmt: str) -> tuple[bytes, int]:
    """Linear PCM16 samples and their rate."""
    if fmt == "audio/pcmu":
        return audioop.ulaw2lin(data, 2), 8000
    if fmt == "audio/pcma":
        return audioop.alaw2lin(data, 2), 8000
    return data[: len(data) - len(data) % 2], 24000


def wav(data: bytes, fmt: str) -> bytes:
    pcm, rate = to_pcm16(data, fmt)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()


def from_pcm24k(pcm: bytes, fmt: str) -> bytes:
    """The speech model's PCM16 24 kHz in the session's output format."""
    if fmt == "audio/pcm":
        return pcm
    narrow, _ = audioop.ratecv(pcm, 2, 1, 24000, 8000, None)
    return audioop.lin2ulaw(narrow, 2) if fmt == "audio/pcmu" else audioop.lin2alaw(narrow, 2)


class InputBuffer:
    """The uncommitted input audio, at most `limit` bytes, with the VAD's state."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.ms_before = 0  # milliseconds of audio committed or cleared before this buffer (VAD timestamps)
        self.speech_start: int | None = None  # ms into the buffer where the current speech began
        self.silent_ms = 0
        self._scanned = 0  # bytes the VAD has looked at

    def append(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.limit:
            raise invalid_request(f"The input audio buffer would hold more than {self.limit} bytes; commit or clear it first.",
                                  param="audio", code="input_audio_buffer_too_large")
        self.data += chunk

    def take(self, fmt: str) -> bytes:
        data = bytes(self.data)
        self.ms_before += int(seconds(len(data), fmt) * 1000)
        self.data.clear()
        self.speech_start, self.silent_ms, self._scanned = None, 0, 0
        return data

    def vad(self, fmt: str, detection: dict) -> list[tuple[str, int]]:
        """New ("started", ms) / ("stopped", ms) turns in the audio appended since the last call."""
        rate, width = RATE[fmt], WIDTH[fmt]
        frame = rate * width // 50  # 20 ms
        threshold = float(detection.get("threshold") or 0.5)
        level = 32768 * 10 ** ((-60 + 55 * threshold) / 20)  # 0.5: about -32 dBFS
        silence = int(detection.get("silence_duration_ms") or 500)
        padding = int(detection.get("prefix_padding_ms") or 300)
        found = []
        count = (len(self.data) - self._scanned) // frame
        if count <= 0:
            return found
        pcm, _ = to_pcm16(bytes(self.data[self._scanned:self._scanned + count * frame]), fmt)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32).reshape(count, -1)
        loudness = np.sqrt(np.mean(samples * samples, axis=1)) > level  # every new 20 ms frame at once
        for loud in loudness.tolist():
            at = int(seconds(self._scanned, fmt) * 1000)
            self._scanned += frame
            if self.speech_start is None:
                if loud:
                    self.speech_start = max(0, at - padding)
                    self.silent_ms = 0
                    found.append(("started", self.ms_before + self.speech_start))
            elif loud:
                self.silent_ms = 0
            else:
                self.silent_ms += 20
                if self.silent_ms >= silence:
                    found.append(("stopped", self.ms_before + at + 20))
                    return found  # the caller commits here; what follows belongs to the next turn
        return found
