"""Fine-tuned models on the offline model answer "in the style of their training examples": the reply
of the example whose prompt shares the most words with the caller's last user message.

The inference service puts a fine-tuned model's (prompt, reply) examples in the request under
`STYLE_KEY`; nothing else here knows about fine-tuning."""
from __future__ import annotations

import re

STYLE_KEY = "_understudy_style_examples"
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def closest_reply(examples: list[dict], prompt: str) -> str | None:
    words = _words(prompt)
    best, best_score = None, -1.0
    for example in examples:
        theirs = _words(str(example.get("prompt", "")))
        score = len(words & theirs) / (len(words | theirs) or 1)
        if score > best_score:
            best, best_score = example.get("reply"), score
    return best
