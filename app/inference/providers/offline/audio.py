"""The offline audio model: reads real audio containers for their duration, "transcribes" them into a
deterministic transcript of plausible length, and speaks text as a real, quiet audio file.

Durations come from the container, never from guessing: WAV through the standard library (or
libsndfile for float/extensible WAV), MP3, M4A/MP4, Ogg (Opus/Vorbis/FLAC) and FLAC through mutagen,
WebM/Matroska through a small EBML walk (browser recordings often carry no Duration element, so the
last block's timecode stands in). Speech is a hummed tone per letter (about 15 characters a second
at speed 1) at 24 kHz mono, encoded by libsndfile (mp3 via its bundled LAME, flac, Ogg Opus), the
standard library (wav, pcm) or, for AAC, a minimal ADTS writer below: AAC has no encoder among
small wheels, and a tone needs only one spectral line per frame.
"""
from __future__ import annotations

import hashlib
import io
import math
import random
import struct
import wave

import numpy as np

SAMPLE_RATE = 24_000
# The longest audio the offline model transcribes (a transcript is ~2.5 words a second): a container's
# header declares its duration, and a forged one can declare years in a few bytes.
MAX_SECONDS = 4 * 3600
CHARS_PER_SECOND = 15
WORDS_PER_SECOND = 2.5


class InvalidAudio(ValueError):
    pass


# -- reading ---------------------------------------------------------------------------------------
def duration(data: bytes) -> float:
    """Seconds of audio in a WAV, MP3, MP4/M4A, Ogg, FLAC or WebM file; InvalidAudio otherwise."""
    seconds = _duration(data)
    if not math.isfinite(seconds):
        raise InvalidAudio("no finite duration")
    return seconds


def _duration(data: bytes) -> float:
    head = data[:12]
    try:
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav(data)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _ebml(data)
        import mutagen.flac
        import mutagen.mp3
        import mutagen.mp4
        import mutagen.oggflac
        import mutagen.oggopus
        import mutagen.oggvorbis

        if head[:4] == b"fLaC":
            kinds = [mutagen.flac.FLAC]
        elif head[:4] == b"OggS":
            kinds = [mutagen.oggopus.OggOpus, mutagen.oggvorbis.OggVorbis, mutagen.oggflac.OggFLAC]
        elif head[4:8] == b"ftyp":
            kinds = [mutagen.mp4.MP4]
        elif head[:3] == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
            kinds = [mutagen.mp3.MP3]  # MPEG audio sync with a layer (ADTS AAC has layer 0: not accepted)
        else:
            raise InvalidAudio("unrecognised container")
        for kind in kinds:
            try:
                length = kind(io.BytesIO(data)).info.length
            except Exception:  # mutagen raises a different error type per format
                continue
            if length and length > 0:
                return float(length)
        raise InvalidAudio("no audio stream")
    except (InvalidAudio, IndexError, ValueError, struct.error):
        raise InvalidAudio("unreadable audio") from None


def _wav(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        import soundfile  # float and WAVE_FORMAT_EXTENSIBLE files, which `wave` does not read

        try:
            info = soundfile.info(io.BytesIO(data))
        except Exception:
            raise InvalidAudio("unreadable wav") from None
        return info.frames / info.samplerate


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    first = data[pos]
    length = 9 - first.bit_length() if first else 9
    if length > 8:
        raise InvalidAudio("bad EBML")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    return value, pos + length


_MASTERS = {0x18538067, 0x1549A966, 0x1F43B675, 0xA0}  # Segment, Info, Cluster, BlockGroup: walk into
_UNKNOWN = {(1 << (7 * n)) - 1 for n in range(1, 9)}


def _ebml(data: bytes) -> float:
    """WebM/Matroska: Info/Duration when present, else the last block's timecode."""
    pos, scale, declared, cluster, last = 0, 1_000_000, None, 0, 0
    while pos < len(data) - 2:
        element, pos = _vint(data, pos, True)
        size, pos = _vint(data, pos, False)
        if element in _MASTERS:
            continue
        if size in _UNKNOWN or pos + size > len(data):
            break
        body = data[pos:pos + size]
        if element == 0x2AD7B1:  # TimecodeScale (ns per tick)
            scale = int.from_bytes(body, "big") or scale
        elif element == 0x4489:  # Duration, a float in ticks
            declared = struct.unpack(">f" if size == 4 else ">d", body)[0]
        elif element == 0xE7:  # Cluster Timecode
            cluster = int.from_bytes(body, "big")
        elif element in (0xA3, 0xA1) and size > 3:  # SimpleBlock / Block: track vint, int16 timecode
            _, offset = _vint(body, 0, False)
            last = max(last, cluster + struct.unpack(">h", body[offset:offset + 2])[0])
        pos += size
    seconds = (declared if declared else last) * scale / 1e9
    if seconds <= 0:
        raise InvalidAudio("no duration in WebM")
    return seconds


# -- transcripts -----------------------------------------------------------------------------------
_WORDS = (
    "the a we it this that our you they and but so then now here there today really just also more some every "
    "team project meeting plan idea question answer result update report change system model data test server "
    "client request response time week morning afternoon people customer product design feature release version "
    "number value list page file image sound voice message note point problem solution reason example detail "
    "think know see want need make take give find tell ask work look try start finish check build ship move keep "
    "good new first last next small large clear simple quick early late better ready important possible certain "
    "is are was will can should could would has have had does did goes comes seems stays"
).split()


def words(seed: bytes, seconds: float) -> list[str]:
    """About 2.5 words a second, in sentences of 5 to 12 words (capitalised, ending in a full stop)."""
    rng = random.Random(seed)
    count = max(1, round(seconds * WORDS_PER_SECOND))
    out: list[str] = []
    while len(out) < count:
        sentence = [rng.choice(_WORDS) for _ in range(min(rng.randint(5, 12), count - len(out)))]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out.extend(sentence)
    return out


def token_id(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:4], "big") % 50_000 + 200


# -- speech ----------------------------------------------------------------------------------------
def speech_seconds(text: str, speed: float) -> float:
    return max(0.3, len(text) / (CHARS_PER_SECOND * speed))


def waveform(text: str, voice: str, speed: float, pitch: int | None = None) -> np.ndarray:
    """int16 mono samples: each letter a short hummed syllable, silence for spaces and punctuation. A
    built-in voice's pitch comes from its name, a custom voice's from its sample (`pitch`)."""
    total = int(speech_seconds(text, speed) * SAMPLE_RATE)
    codes = np.array([ord(c) for c in text] or [32], dtype=np.int64)
    voiced = np.array([c.isalnum() for c in text] or [False], dtype=np.float32)
    pitch = pitch or 95 + hashlib.sha256(voice.encode()).digest()[0] % 120
    out = np.empty(total, dtype=np.int16)
    phase = 0.0
    for start in range(0, total, 1 << 20):
        t = np.arange(start, min(total, start + (1 << 20)), dtype=np.int64)
        where = t * len(codes) / total
        k = where.astype(np.int64)
        freq = pitch * (1 + (codes[k] % 7) / 12)
        ramp = phase + np.cumsum(2 * np.pi * freq / SAMPLE_RATE)
        phase = float(ramp[-1]) % (2 * np.pi)
        envelope = voiced[k] * np.sin(np.pi * (where - k)) ** 2
        out[start:start + len(t)] = (3000 * envelope * (np.sin(ramp) + 0.3 * np.sin(2 * ramp))).astype(np.int16)
    return out


def encode(samples: np.ndarray, fmt: str) -> bytes:
    if fmt == "pcm":
        return samples.astype("<i2").tobytes()
    if fmt == "wav":
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(SAMPLE_RATE)
            writer.writeframes(samples.astype("<i2").tobytes())
        return out.getvalue()
    if fmt == "aac":
        return adts_aac(samples)
    import soundfile

    container, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC", "PCM_16"), "opus": ("OGG", "OPUS")}[fmt]
    out = io.BytesIO()
    soundfile.write(out, samples, SAMPLE_RATE, format=container, subtype=subtype)
    return out.getvalue()


class _Bits:
    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def put(self, value: int, width: int) -> "_Bits":
        self.value = (self.value << width) | (value & ((1 << width) - 1))
        self.count += width
        return self

    def bytes(self) -> bytes:
        self.put(0, -self.count % 8)
        return self.value.to_bytes(self.count // 8, "big")


def _aac_frame(tone: bool) -> bytes:
    """One AAC-LC raw data block (a single channel element, long window): silent, or one spectral
    line in scale factor band 9 (bins 36-39, about 440 Hz at 24 kHz) at a quiet gain."""
    bits = _Bits().put(0, 3).put(0, 4).put(180, 8)  # SCE, tag 0, global_gain
    bits.put(0, 1).put(0, 2).put(0, 1)  # ics_reserved_bit, ONLY_LONG_SEQUENCE, sine window
    if tone:
        bits.put(10, 6).put(0, 1)  # max_sfb 10, no prediction
        bits.put(0, 4).put(9, 5).put(1, 4).put(1, 5)  # sections: bands 0-8 ZERO_HCB, band 9 codebook 1
        bits.put(0, 1)  # scale factor: difference 0 from global_gain
    else:
        bits.put(0, 6).put(0, 1)
    bits.put(0, 3)  # no pulse, TNS or gain control data
    if tone:
        bits.put(0x13, 5)  # codebook 1 quad (0, 1, 0, 0)
    payload = bits.put(7, 3).bytes()  # ID_END
    header = _Bits().put(0xFFF, 12).put(0, 1).put(0, 2).put(1, 1)  # sync, MPEG-4, layer 0, no CRC
    header.put(1, 2).put(6, 4).put(0, 1).put(1, 3).put(0, 4)  # AAC LC, 24 kHz, mono
    header.put(len(payload) + 7, 13).put(0x7FF, 11).put(0, 2)  # frame length, VBR, one block
    return header.bytes() + payload


def adts_aac(samples: np.ndarray) -> bytes:
    """ADTS AAC-LC: a tone frame wherever the waveform is voiced, a silent frame elsewhere."""
    frames = max(1, -(-len(samples) // 1024))
    padded = np.zeros(frames * 1024, dtype=np.float32)
    padded[:len(samples)] = np.abs(samples)
    loud = padded.reshape(frames, 1024).mean(axis=1) > 300
    tone, silent = _aac_frame(True), _aac_frame(False)
    return b"".join(tone if flag else silent for flag in loud)
