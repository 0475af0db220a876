"""Deterministic embeddings that carry lexical meaning: texts sharing words are close.

Each word unigram and bigram of a text is a feature; a feature's vector is a pseudo-random Gaussian
direction seeded by a hash of the feature (a dense signed hash: a random projection of the bag of
words), weighted (stopwords count little, bigrams half). A small component seeded by the whole text
keeps different texts apart even when they share every word. The sum is normalised, so cosine
similarity approximates word overlap, which is enough for retrieval tests and vector-store demos.
`dimensions` shortens the native vector and renormalises it, as OpenAI's text-embedding-3 models do.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

import numpy as np

from app.core.errors import invalid_request
from app.core.tokens import encode, encoding
from app.inference.providers.offline.text import STOPWORDS

NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000  # OpenAI's cap for all inputs of one request (each costs ~40 µs per distinct word)
VOCABULARY = 100277
_WORD = re.compile(r"\w+")
_TEXT_COMPONENT = 0.15


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=1024)  # float32: at most 12 MiB at 3072 dimensions
def _direction(feature: str, dim: int) -> np.ndarray:
    vector = np.random.default_rng(_seed("feature", feature)).standard_normal(dim, dtype=np.float32)
    vector.setflags(write=False)
    return vector


def _features(text: str) -> dict[str, float]:
    words = [w.lower() for w in _WORD.findall(text)]
    weights: dict[str, float] = {}
    for word in words:
        weights[word] = weights.get(word, 0.0) + (0.25 if word in STOPWORDS else 1.0)
    for left, right in zip(words, words[1:]):
        key = f"{left} {right}"
        weights[key] = weights.get(key, 0.0) + 0.5
    return weights


def embed(text: str, model: str, dim: int) -> np.ndarray:
    """A unit vector of `dim` floats for `text` (native size of `model`)."""
    vector = np.zeros(dim)
    for feature, weight in _features(text).items():
        vector += weight * _direction(feature, dim)
    norm = np.linalg.norm(vector)
    noise = np.random.default_rng(_seed("text", model, text)).standard_normal(dim)
    noise *= _TEXT_COMPONENT * (norm or 1.0) / np.linalg.norm(noise)
    vector += noise
    return vector / np.linalg.norm(vector)


def _inputs(params: dict) -> list[tuple[str, int]]:
    value = params.get("input")
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise invalid_request("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param="input")
    if len(items) > MAX_INPUTS:
        raise invalid_request(f"Invalid 'input': maximum array size is {MAX_INPUTS}, but got {len(items)}.", param="input")
    out = []
    for index, item in enumerate(items):
        if isinstance(item, str) and item:
            tokens = len(encode(item))
            out.append((item, tokens))
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < VOCABULARY for t in item):
            try:
                out.append((encoding().decode(item), len(item)))
            except KeyError:
                raise invalid_request(f"Invalid 'input[{index}]': unknown token id.", param="input") from None
        else:
            raise invalid_request("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param="input")
        if out[-1][1] > MAX_INPUT_TOKENS:
            raise invalid_request(
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested {out[-1][1]} tokens "
                f"({out[-1][1]} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
                param="input",
            )
    total = sum(count for _, count in out)
    if total > MAX_REQUEST_TOKENS:
        raise invalid_request(f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request.", param="input")
    return out


def _dimensions(params: dict, model: str) -> tuple[int, int]:
    """(native, requested) sizes."""
    native = NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    requested = params.get("dimensions")
    if requested is None:
        return native, native
    if model == "text-embedding-ada-002":
        raise invalid_request("This model does not support specifying dimensions.", param="dimensions")
    if not isinstance(requested, int) or isinstance(requested, bool) or not 1 <= requested <= native:
        raise invalid_request(f"Invalid 'dimensions': expected an integer between 1 and {native} for {model}, but got {requested!r}.", param="dimensions")
    return native, requested


def create(params: dict) -> dict:
    model = str(params.get("model") or "")
    encoding_format = params.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise invalid_request(f"Invalid value for 'encoding_format': '{encoding_format}'. Supported values are: 'float' and 'base64'.", param="encoding_format")
    native, dim = _dimensions(params, model)
    inputs = _inputs(params)
    data = []
    for index, (text, _) in enumerate(inputs):
        vector = embed(text, model, native)
        if dim < native:
            vector = vector[:dim] / np.linalg.norm(vector[:dim])
        as_float32 = vector.astype("<f4")
        value = base64.b64encode(as_float32.tobytes()).decode() if encoding_format == "base64" else as_float32.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(count for _, count in inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
