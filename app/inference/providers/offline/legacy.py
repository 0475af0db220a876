"""Legacy `/v1/completions` (`text_completion`): a continuation of each prompt, whole or streamed.

Like chat, one plan renders both ways. OpenAI's defaults are kept, notably `max_tokens` 16 (so a
continuation usually ends with finish_reason "length", as with gpt-3.5-turbo-instruct).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from app.core.errors import invalid_request
from app.core.tokens import encode, encoding
from app.inference.providers.offline import output, seeding, text
from app.inference.providers.offline.chat import FINGERPRINT, int_param
from app.inference.providers.offline.logprobs import legacy_logprobs

DEFAULT_MAX_TOKENS = 16
VOCABULARY = 100277
# Bounds on one request's work: choices (prompts × n), and tokens emitted (echoed prompts included) times
# the entries logprobs keep for each (1 + `logprobs`), all choices together.
MAX_CHOICES = 2048
MAX_ANSWER_TOKENS = 1_000_000


@dataclass
class LegacyChoice:
    index: int
    pieces: list[str]
    logprobs: dict | None  # over the tokens of all pieces
    piece_sizes: list[int]  # tokens per piece, to slice `logprobs` for the stream
    finish_reason: str


def prompts(params: dict) -> list[tuple[str, int]]:
    """(text, prompt tokens) per prompt: a string, strings, a token array, or token arrays."""
    prompt = params.get("prompt", "<|endoftext|>")
    if isinstance(prompt, str):
        return [(prompt, len(encode(prompt)))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [(p, len(encode(p))) for p in prompt]
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [(_decode(prompt, "prompt"), len(prompt))]
        if all(isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p) for p in prompt):
            return [(_decode(p, f"prompt[{i}]"), len(p)) for i, p in enumerate(prompt)]
    raise invalid_request("Invalid 'prompt': expected a string, an array of strings, an array of tokens or an array of token arrays.", param="prompt")


def _decode(tokens: list[int], param: str) -> str:
    if any(t < 0 or t >= VOCABULARY for t in tokens):
        raise invalid_request(f"Invalid '{param}': token ids must be between 0 and {VOCABULARY - 1}.", param=param)
    try:
        return encoding().decode(tokens)
    except KeyError:
        raise invalid_request(f"Invalid '{param}': unknown token id.", param=param) from None


def plan(params: dict) -> tuple[list[LegacyChoice], dict]:
    items = prompts(params)
    n = int_param(params, "n", 1, 1, 128)
    best_of = int_param(params, "best_of", n, 1, 20)
    if best_of < n:
        raise invalid_request("best_of must be greater than or equal to n.", param="best_of")
    top = params.get("logprobs")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 5):
        raise invalid_request(f"Invalid 'logprobs': expected an integer between 0 and 5, but got {top!r} instead.", param="logprobs")
    budget = output.token_budget(params, "max_tokens", default=DEFAULT_MAX_TOKENS)
    stops = output.stop_sequences(params)
    echo = bool(params.get("echo"))
    if len(items) * n > MAX_CHOICES:
        raise invalid_request(f"The offline model answers at most {MAX_CHOICES} choices per request (prompts × n), not {len(items) * n}.",
                              param="n" if n > 1 else "prompt")
    prompt_tokens = sum(count for _, count in items)
    if echo and n * prompt_tokens * (1 + (top or 0)) > MAX_ANSWER_TOKENS:
        _too_many_answer_tokens(echo)  # the echoed prompts alone: refused before any choice is made
    seed = seeding.request_seed(params, "completion")
    choices, completion_tokens, answer_tokens = [], 0, 0
    enc = encoding()
    for p_index, (prompt, _) in enumerate(items):
        for j in range(n):
            index = p_index * n + j
            emitted = output.emit(text.continuation_text(prompt, seeding.rng(seed, "completion", p_index, j)), budget=budget, stops=stops)
            completion_tokens += emitted.token_count
            pieces, groups = list(emitted.pieces), list(emitted.piece_tokens)
            if echo and prompt:
                pieces.insert(0, prompt)
                groups.insert(0, [enc.decode_single_token_bytes(t) for t in encode(prompt)])
            answer_tokens += sum(len(g) for g in groups) * (1 + (top or 0))
            if answer_tokens > MAX_ANSWER_TOKENS:
                _too_many_answer_tokens(echo)
            logprobs = None
            if top is not None:
                logprobs = legacy_logprobs([t for g in groups for t in g], seed, index, top, 0 if echo else len(prompt))
            choices.append(LegacyChoice(index, pieces, logprobs, [len(g) for g in groups], emitted.finish_reason))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    return choices, usage


def _too_many_answer_tokens(echo: bool):
    raise invalid_request(
        f"The answer would hold more than {MAX_ANSWER_TOKENS} tokens (echoed prompts included, times 1 + logprobs) for all choices "
        "together: lower 'n', 'logprobs' or the length of the echoed prompt.", param="echo" if echo else "n")


def _header(meta: dict) -> dict:
    return {"id": meta["id"], "object": "text_completion", "created": meta["created"], "model": meta["model"], "system_fingerprint": FINGERPRINT}


def completion(choices: list[LegacyChoice], usage: dict, meta: dict) -> dict:
    body = [{"index": c.index, "text": "".join(c.pieces), "logprobs": c.logprobs, "finish_reason": c.finish_reason} for c in choices]
    return {**_header(meta), "choices": body, "usage": usage}


def _slice(logprobs: dict, start: int, stop: int) -> dict:
    return {key: values[start:stop] for key, values in logprobs.items()}


def chunks(choices: list[LegacyChoice], usage: dict, meta: dict, include_usage: bool) -> Iterator[dict]:
    base = _header(meta)
    if include_usage:
        base["usage"] = None
    for choice in choices:
        start = 0
        for piece, size in zip(choice.pieces, choice.piece_sizes):
            logprobs = _slice(choice.logprobs, start, start + size) if choice.logprobs is not None else None
            start += size
            yield {**base, "choices": [{"index": choice.index, "text": piece, "logprobs": logprobs, "finish_reason": None}]}
        yield {**base, "choices": [{"index": choice.index, "text": "", "logprobs": None, "finish_reason": choice.finish_reason}]}
    if include_usage:
        yield {**base, "choices": [], "usage": usage}
