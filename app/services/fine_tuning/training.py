"""The training file's checks and the emulated run's numbers: pure functions, so a resumed job recomputes
exactly what the interrupted one would have written (loss is seeded by the job's seed and file)."""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass

from app.core.tokens import count_chat_tokens

MIN_EXAMPLES = 10
MAX_EXAMPLE_TOKENS = 65_536
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
STYLE_EXAMPLES = 50  # (prompt, reply) pairs kept in the fine-tuned model's row


class InvalidFile(ValueError):
    pass


@dataclass
class Parsed:
    examples: int
    tokens: int  # per epoch
    style: list[dict]  # [{"prompt", "reply"}]


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _check_messages(messages, line: int, final_assistant: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidFile(f"Invalid file format. Line {line}: 'messages' must be a non-empty array.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidFile(f"Invalid file format. Line {line}, message {i + 1}: missing or invalid 'role'.")
        if message.get("content") is None and not message.get("tool_calls") and not message.get("function_call"):
            raise InvalidFile(f"Invalid file format. Line {line}, message {i + 1}: missing 'content'.")
    if final_assistant and messages[-1].get("role") != "assistant":
        raise InvalidFile(f"Invalid file format. Line {line}: the last message must be from the assistant (no assistant message to train on).")


def _last_user(messages: list) -> str:
    return next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")


def parse(raw: bytes, method: str, minimum: int = MIN_EXAMPLES) -> Parsed:
    """Raises InvalidFile naming the line."""
    examples = tokens = 0
    style: list[dict] = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidFile(f"Invalid file format. Line {number} is not valid JSON.") from None
        if not isinstance(example, dict):
            raise InvalidFile(f"Invalid file format. Line {number}: expected a JSON object.")
        if method == "dpo":
            for key in ("input", "preferred_output", "non_preferred_output"):
                if key not in example:
                    raise InvalidFile(f"Invalid file format. Line {number}: missing '{key}'.")
            prompt = example["input"].get("messages") if isinstance(example["input"], dict) else None
            _check_messages(prompt, number, final_assistant=False)
            for key in ("preferred_output", "non_preferred_output"):
                _check_messages(example[key], number, final_assistant=True)
            messages = list(prompt) + list(example["preferred_output"])
        else:
            if "messages" not in example:
                raise InvalidFile(f"Invalid file format. Line {number}: missing 'messages'.")
            messages = example["messages"]
            _check_messages(messages, number, final_assistant=method != "reinforcement")
        count = count_chat_tokens(messages, example.get("tools") or None)
        if count > MAX_EXAMPLE_TOKENS:
            raise InvalidFile(f"Invalid file format. Line {number}: the example has {count} tokens, over the limit of {MAX_EXAMPLE_TOKENS}.")
        examples += 1
        tokens += count
        if len(style) < STYLE_EXAMPLES and messages[-1].get("role") == "assistant":
            reply = _text(messages[-1].get("content"))
            if reply:
                style.append({"prompt": _last_user(messages), "reply": reply})
    if examples < minimum:
        raise InvalidFile(f"Training file has {examples} example(s), but must have at least {minimum} examples.")
    return Parsed(examples, tokens, style)


def resolve(hyper: dict, examples: int) -> dict:
    def pick(name, auto):
        value = hyper.get(name, "auto")
        return auto if value in (None, "auto") else value

    batch = pick("batch_size", max(1, min(256, examples // 10 or 1)))
    epochs = pick("n_epochs", 3)
    out = {"batch_size": int(batch), "learning_rate_multiplier": float(pick("learning_rate_multiplier", 1.8)), "n_epochs": int(epochs)}
    for name, value in hyper.items():
        out.setdefault(name, value if value != "auto" else 0.1)
    return out


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return max(1, math.ceil(examples / batch_size))


def metrics(seed_text: str, step: int, total: int, validation: bool = False) -> dict:
    """A plausibly decreasing loss with a little deterministic noise (and a slightly higher validation
    loss when there is a validation file)."""
    r = random.Random(int.from_bytes(hashlib.sha256(f"{seed_text}:{step}".encode()).digest()[:8], "big"))
    progress = step / max(total, 1)
    loss = 2.2 * math.exp(-3.0 * progress) + 0.15 + r.uniform(-0.08, 0.08)
    accuracy = min(0.99, 0.45 + 0.5 * (1 - math.exp(-3.5 * progress)) + r.uniform(-0.03, 0.03))
    out = {"step": step, "train_loss": round(loss, 5), "train_mean_token_accuracy": round(accuracy, 5)}
    if validation:
        out.update(valid_loss=round(loss * 1.08 + r.uniform(0, 0.05), 5), valid_mean_token_accuracy=round(accuracy * 0.97, 5))
    return out
