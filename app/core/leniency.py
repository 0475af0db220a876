"""Where request validation accepts more than the SDK's types say, and why: the one place to look.

OpenAI's request types in the `openai` SDK are what `app/core/validation.py` checks bodies against. They
are stricter than OpenAI itself in a few known ways, and real clients (the Agents SDK, LangChain, litellm,
Codex) depend on OpenAI's leniency; refusing their valid input breaks them. Every exception is here:

1. `OPTIONAL_ON_INPUT`: fields the SDK's types require that OpenAI does not. Many are output shapes that
   clients replay as input (an assistant message without `id`/`status`, `output_text` without
   `annotations`); `input_image` without `detail` means `auto`; a function tool without `strict` or
   `parameters` is accepted by the Responses API (the SDK types them required-but-nullable).
2. Lists are checked eagerly (`list[...]` where the SDK says `Iterable[...]`), so a union tries each branch
   on the whole value: an array of token arrays is an `input` of embeddings and a `prompt` of completions.
3. Unknown keys are refused at the top level and inside nested objects the SDK types (OpenAI's
   "Unknown parameter"), never inside list items, whose types grow with every API release.
4. Errors in a union name the deepest failing field; a branch whose discriminator (`type`, `object`)
   does not match is blamed only when no matching branch failed as deep (`DISCRIMINATORS`).

Anthropic's `/v1/messages` is checked by hand (app/services/anthropic_params.py), lenient about beta fields
and block types it does not read, strict about unknown top-level fields, as Anthropic is.
"""
from __future__ import annotations

# Keyed by the SDK TypedDict's module and name.
OPTIONAL_ON_INPUT: dict[tuple[str, str], frozenset[str]] = {
    ("openai.types.responses.response_output_message_param", "ResponseOutputMessageParam"): frozenset({"id", "status"}),
    ("openai.types.responses.response_output_text_param", "ResponseOutputTextParam"): frozenset({"annotations"}),
    ("openai.types.responses.response_input_image_param", "ResponseInputImageParam"): frozenset({"detail"}),
    ("openai.types.responses.response_input_image_content_param", "ResponseInputImageContentParam"): frozenset({"detail"}),
    ("openai.types.responses.function_tool_param", "FunctionToolParam"): frozenset({"strict", "parameters"}),
}

# The fields whose literal value picks a union's branch (`object` tells a trace from a span).
DISCRIMINATORS = frozenset({"type", "object"})
