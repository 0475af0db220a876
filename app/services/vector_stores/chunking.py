"""Token-window chunking as OpenAI's file search does it, and the strategy object it reports.

OpenAI cuts a file into windows of at most `max_chunk_size_tokens` tokens, each window starting
`max - overlap` tokens after the previous one (`auto` is 800/400), and shows the strategy on the vector
store file as a `static` object whichever was asked for. We count with our tokenizer (cl100k_base, see
app/core/tokens.py) and return *slices of the original text* rather than decoded token runs, so a chunk
never holds half a UTF-8 character and the chunks' spans cover the text exactly. A window's end (and
the next window's start) moves back a few tokens to the nearest whitespace when one is that near, so
words are not cut where that is cheap. Each chunk is then counted on its own and trimmed if BPE at the
cut makes it longer than the window: the limit holds by the same tokenizer that counts usage.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import tiktoken

from app.core.errors import invalid_request
from app.core.tokens import encoding

AUTO_MAX_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
PARAM = "chunking_strategy"


@dataclass
class ChunkText:
    text: str
    tokens: int  # by our tokenizer, counted on this text alone
    position: int  # order within the file, from 0
    start: int = 0  # the chunk is text[start:end] of the text it was cut from
    end: int = 0


def static_strategy(max_tokens: int = AUTO_MAX_TOKENS, overlap: int = AUTO_OVERLAP_TOKENS) -> dict:
    return {"type": "static", "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap}}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, (list, tuple)) else "an object"


def _missing(param: str):
    return invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _wrong_type(param: str, expected: str, value):
    return invalid_request(f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
                           param=param, code="invalid_type")


def _no_unknown_keys(obj: dict, allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise invalid_request(f"Unknown parameter: '{prefix}.{key}'.", param=f"{prefix}.{key}", code="unknown_parameter")


def _integer(static: dict, key: str, low: int, high: int | None) -> int:
    param = f"{PARAM}.static.{key}"
    if key not in static:
        raise _missing(param)
    value = static[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(param, "an integer", value)
    if value < low:
        raise invalid_request(f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
                              param=param, code="integer_below_min_value")
    if high is not None and value > high:
        raise invalid_request(f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
                              param=param, code="integer_above_max_value")
    return value


def validate_chunking_strategy(strategy: dict | None) -> dict:
    """The strategy as OpenAI shows it on a vector store file; a 400 naming the param when it is wrong."""
    if strategy is None:
        return static_strategy()
    if not isinstance(strategy, dict):
        raise _wrong_type(PARAM, "an object", strategy)
    if "type" not in strategy:
        raise _missing(f"{PARAM}.type")
    kind = strategy["type"]
    if kind == "auto":
        _no_unknown_keys(strategy, {"type"}, PARAM)
        return static_strategy()
    if kind != "static":
        raise invalid_request(f"Invalid value: '{kind}'. Supported values are: 'auto' and 'static'.",
                              param=f"{PARAM}.type", code="invalid_value")
    _no_unknown_keys(strategy, {"type", "static"}, PARAM)
    if "static" not in strategy:
        raise _missing(f"{PARAM}.static")
    static = strategy["static"]
    if not isinstance(static, dict):
        raise _wrong_type(f"{PARAM}.static", "an object", static)
    _no_unknown_keys(static, {"max_chunk_size_tokens", "chunk_overlap_tokens"}, f"{PARAM}.static")
    max_tokens = _integer(static, "max_chunk_size_tokens", MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS)
    overlap = _integer(static, "chunk_overlap_tokens", 0, None)
    if overlap * 2 > max_tokens:
        param = f"{PARAM}.static.chunk_overlap_tokens"
        raise invalid_request(
            f"Invalid '{param}': chunk_overlap_tokens must not exceed half of max_chunk_size_tokens "
            f"(at most {max_tokens // 2} for max_chunk_size_tokens {max_tokens}), but got {overlap} instead.",
            param=param, code="invalid_value")
    return static_strategy(max_tokens, overlap)


@lru_cache(maxsize=4)
def _token_lengths(enc: tiktoken.Encoding) -> np.ndarray:
    """Bytes per token id, once per encoding (~50 ms): far cheaper than decoding every token of a big file."""
    lengths = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    for token in range(enc.max_token_value + 1):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:  # the gap before the special tokens
            pass
    return lengths


def chunk_text(text: str, max_tokens: int, overlap: int) -> list[ChunkText]:
    """Windows of at most `max_tokens` tokens, consecutive ones sharing about `overlap` tokens.

    Whitespace-only windows are dropped; positions count the chunks kept."""
    if max_tokens < 8 or not 0 <= overlap < max_tokens:
        raise ValueError("chunk_text needs max_tokens >= 8 and 0 <= overlap < max_tokens")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: tiktoken would replace them, making our offsets wrong
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if not text.strip():
        return []
    enc = encoding()
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return [ChunkText(text, len(tokens), 0, 0, len(text))]

    byte_at = np.concatenate(([0], np.cumsum(_token_lengths(enc)[np.asarray(tokens)]))).tolist()  # where token i starts
    data = text.encode("utf-8")
    lead = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80  # bytes that start a character
    char_at = np.concatenate(([0], np.cumsum(lead)))  # characters before byte b
    n, total_bytes = len(tokens), len(data)
    slack = max(1, min(8, max_tokens // 16))

    def whole_char(i: int) -> bool:
        return byte_at[i] == total_bytes or bool(lead[byte_at[i]])

    def between_words(i: int) -> bool:
        return i >= n or data[byte_at[i]:byte_at[i] + 1].isspace() or data[byte_at[i] - 1:byte_at[i]].isspace()

    def cut(i: int, low: int) -> int:
        """The token boundary to cut at, at or before i and above `low`: whitespace if within `slack`,
        else the nearest whole character (at most 3 tokens back); forward only if nothing fits."""
        for j in range(i, max(low, i - slack), -1):
            if whole_char(j) and between_words(j):
                return j
        for j in range(i, low, -1):
            if whole_char(j):
                return j
        j = i + 1
        while not whole_char(j):
            j += 1
        return j

    chunks: list[ChunkText] = []
    start = 0
    while True:
        end = n if start + max_tokens >= n else cut(start + max_tokens, start)
        while True:
            first, last = int(char_at[byte_at[start]]), int(char_at[byte_at[end]])
            count = len(enc.encode_ordinary(text[first:last]))
            if count <= max_tokens or end - start <= 1:
                break
            end = cut(end - (count - max_tokens), start)
        piece = text[first:last]
        if piece.strip():
            chunks.append(ChunkText(piece, count, len(chunks), first, last))
        if end >= n:
            return chunks
        start = max(cut(end - overlap, start), start + 1) if overlap else end
        while not whole_char(start):
            start += 1
