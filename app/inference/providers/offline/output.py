"""Generated text as tokens: stop sequences, the `max_tokens` cut, and word-sized stream pieces.

The streamed and the non-streamed answer must be the same text, token for token, so both are rendered
from one `Emitted`: the tokens of the final text grouped into word-sized pieces (a piece starts at a
token that begins with whitespace, and never splits a UTF-8 character). The full text is the pieces
joined, by definition.
"""
from __future__ import annotations

from app.core.errors import invalid_request
from app.core.tokens import encoding


class Emitted:
    """The final text's tokens. The word-sized pieces are grouped on first use: a non-streamed answer
    without logprobs needs only the text and the count, and grouping is most of an answer's cost."""

    __slots__ = ("_ids", "_text", "finish_reason", "_grouped")

    def __init__(self, ids: list[int], text: str | None, finish_reason: str = "stop") -> None:
        self._ids = ids
        self._text = text  # None when the budget cut the tokens: the text is then the pieces joined
        self.finish_reason = finish_reason
        self._grouped: tuple[list[str], list[list[bytes]]] | None = None

    def _groups(self) -> tuple[list[str], list[list[bytes]]]:
        if self._grouped is None:
            self._grouped = group(encoding().decode_tokens_bytes(self._ids))
        return self._grouped

    @property
    def pieces(self) -> list[str]:
        return self._groups()[0]

    @property
    def piece_tokens(self) -> list[list[bytes]]:
        return self._groups()[1]

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.pieces)
        return self._text

    @property
    def token_count(self) -> int:
        return len(self._ids)


def stop_sequences(params: dict) -> list[str]:
    stop = params.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise invalid_request(f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {len(stop)} instead.", param="stop")
        return [s for s in stop if s]
    raise invalid_request("Invalid type for 'stop': expected a string or an array of strings.", param="stop")


def token_budget(params: dict, *names: str, default: int | None = None) -> int | None:
    """The first of `names` that is set (`max_completion_tokens`, `max_tokens`), checked to be ≥ 1."""
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid_request(f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value!r} instead.", param=name, code="integer_below_min_value")
        return value
    return default


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    positions = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


_BREAKS = frozenset(b" \n\t")


def group(tokens: list[bytes]) -> tuple[list[str], list[list[bytes]]]:
    if all(map(bytes.isascii, tokens)):  # the common case: no character can be split, nothing to check
        grouped: list[list[bytes]] = []
        current: list[bytes] = []
        for raw in tokens:
            if current and raw[0] in _BREAKS:
                grouped.append(current)
                current = []
            current.append(raw)
        if current:
            grouped.append(current)
        return [b"".join(piece).decode("ascii") for piece in grouped], grouped
    pieces: list[str] = []
    grouped: list[list[bytes]] = []
    buffer = b""
    current: list[bytes] = []
    for raw in tokens:
        if current and raw[:1] in (b" ", b"\n", b"\t") and _decodes(buffer):
            pieces.append(buffer.decode("utf-8"))
            grouped.append(current)
            buffer, current = b"", []
        buffer += raw
        current.append(raw)
    if current:
        pieces.append(buffer.decode("utf-8", errors="ignore"))
        grouped.append(current)
    return pieces, grouped


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def emit(text: str, *, budget: int | None = None, stops: list[str] = ()) -> Emitted:
    text, _ = cut_at_stop(text, list(stops))
    enc = encoding()
    ids = enc.encode_ordinary(text)  # special tokens' text as ordinary text
    if budget is not None and len(ids) > budget:
        return Emitted(ids[:budget], None, "length")
    return Emitted(ids, text)


def truncate_to_tokens(text: str, budget: int) -> tuple[str, int, bool]:
    """`text` cut to at most `budget` tokens: (text, tokens used, was cut)."""
    enc = encoding()
    ids = enc.encode(text, disallowed_special=())
    if len(ids) <= budget:
        return text, len(ids), False
    kept = ids[: max(budget, 0)]
    return enc.decode_bytes(kept).decode("utf-8", errors="ignore"), len(kept), True


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }
