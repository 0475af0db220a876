"""Deterministic, plausible log probabilities for the tokens the offline model emits.

Clients that read `logprobs` (confidence scores, classifiers on the first token) need well-formed
values: each in (-inf, 0], the alternatives' probabilities summing to at most 1 with the chosen token's,
sorted most likely first. Values are drawn per (seed, choice, position), so they repeat with the request
and are the same whether the answer is streamed or not.
"""
from __future__ import annotations

import math

from app.inference.providers.offline.seeding import rng

_ALTERNATIVES = (" the", " a", ",", ".", " and", " of", " to", " is", " in", " it", " that", " for", " on", " with", " this", " you", "\n", " I")


def token_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


def _draw(seed: int, choice: int, position: int, top: int) -> tuple[float, list[tuple[str, float]]]:
    r = rng(seed, "logprob", choice, position)
    chosen = -3.0 * r.random() ** 4  # mostly confident, now and then not
    p = math.exp(chosen)
    alternatives = []
    remaining = 1.0 - p
    for index in range(top):
        share = remaining * (0.2 + 0.5 * r.random())
        remaining -= share
        alternatives.append((_ALTERNATIVES[(position * 7 + index * 3 + choice) % len(_ALTERNATIVES)], math.log(max(share, 1e-12))))
    return round(chosen, 6), [(t, round(lp, 6)) for t, lp in alternatives]


def chat_entries(tokens: list[bytes], seed: int, choice: int, start: int, top: int) -> list[dict]:
    """`ChatCompletionTokenLogprob` dicts for `tokens`, which begin at `start` in the choice's output."""
    entries = []
    for offset, raw in enumerate(tokens):
        text = token_text(raw)
        chosen, alternatives = _draw(seed, choice, start + offset, top)
        ranked = [(text, chosen)] + [(t, lp) for t, lp in alternatives if t != text]
        ranked.sort(key=lambda item: -item[1])
        entries.append(
            {
                "token": text,
                "logprob": chosen,
                "bytes": list(raw),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked[:top]],
            }
        )
    return entries


def legacy_logprobs(tokens: list[bytes], seed: int, choice: int, top: int, first_offset: int, *, start: int = 0) -> dict:
    """A legacy completion's `logprobs` object (tokens, token_logprobs, top_logprobs, text_offset).

    OpenAI gives the first echoed prompt token a null logprob, which the SDK's `Completion` type rejects;
    the SDK's type wins here, so every token has a value."""
    out: dict = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    offset = first_offset
    for index, raw in enumerate(tokens):
        text = token_text(raw)
        chosen, alternatives = _draw(seed, choice, start + index, top)
        ranked = sorted([(text, chosen)] + [(t, lp) for t, lp in alternatives if t != text], key=lambda item: -item[1])
        out["tokens"].append(text)
        out["token_logprobs"].append(chosen)
        out["top_logprobs"].append(dict(ranked[:top]))
        out["text_offset"].append(offset)
        offset += len(raw.decode("utf-8", errors="ignore"))
    return out
