"""OpenAI's Responses stream events, numbered: every event carries an increasing `sequence_number` from 0
(clients resume a background stream with `starting_after`)."""
from __future__ import annotations

import copy

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "response.cancelled")


class Events:
    def __init__(self, start: int = 0) -> None:
        self.next = start
        self.log: list[tuple[str, dict]] = []

    def _make(self, kind: str, **fields) -> tuple[str, dict]:
        event = {"type": kind, "sequence_number": self.next, **fields}
        self.next += 1
        self.log.append((kind, event))
        return kind, event

    def lifecycle(self, kind: str, response: dict) -> tuple[str, dict]:
        return self._make(f"response.{kind}", response=copy.deepcopy(response))

    def item_added(self, index: int, item: dict) -> tuple[str, dict]:
        return self._make("response.output_item.added", output_index=index, item=copy.deepcopy(item))

    def item_done(self, index: int, item: dict) -> tuple[str, dict]:
        return self._make("response.output_item.done", output_index=index, item=copy.deepcopy(item))

    def part_added(self, item_id: str, index: int, part: dict, content_index: int = 0) -> tuple[str, dict]:
        return self._make("response.content_part.added", item_id=item_id, output_index=index, content_index=content_index, part=dict(part))

    def part_done(self, item_id: str, index: int, part: dict, content_index: int = 0) -> tuple[str, dict]:
        return self._make("response.content_part.done", item_id=item_id, output_index=index, content_index=content_index, part=copy.deepcopy(part))

    def refusal_delta(self, item_id: str, index: int, content_index: int, delta: str) -> tuple[str, dict]:
        return self._make("response.refusal.delta", item_id=item_id, output_index=index, content_index=content_index, delta=delta)

    def refusal_done(self, item_id: str, index: int, content_index: int, refusal: str) -> tuple[str, dict]:
        return self._make("response.refusal.done", item_id=item_id, output_index=index, content_index=content_index, refusal=refusal)

    def text_delta(self, item_id: str, index: int, delta: str, logprobs: list[dict]) -> tuple[str, dict]:
        return self._make("response.output_text.delta", item_id=item_id, output_index=index, content_index=0, delta=delta, logprobs=logprobs)

    def text_done(self, item_id: str, index: int, text: str, logprobs: list[dict]) -> tuple[str, dict]:
        return self._make("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=text, logprobs=logprobs)

    def annotation_added(self, item_id: str, index: int, position: int, annotation: dict) -> tuple[str, dict]:
        return self._make("response.output_text.annotation.added", item_id=item_id, output_index=index, content_index=0,
                          annotation_index=position, annotation=dict(annotation))

    def arguments_delta(self, item_id: str, index: int, delta: str) -> tuple[str, dict]:
        return self._make("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=delta)

    def arguments_done(self, item_id: str, index: int, name: str, arguments: str) -> tuple[str, dict]:
        return self._make("response.function_call_arguments.done", item_id=item_id, output_index=index, name=name, arguments=arguments)

    def input_delta(self, item_id: str, index: int, delta: str) -> tuple[str, dict]:
        return self._make("response.custom_tool_call_input.delta", item_id=item_id, output_index=index, delta=delta)

    def input_done(self, item_id: str, index: int, text: str) -> tuple[str, dict]:
        return self._make("response.custom_tool_call_input.done", item_id=item_id, output_index=index, input=text)

    def file_search(self, phase: str, item_id: str, index: int) -> tuple[str, dict]:
        return self._make(f"response.file_search_call.{phase}", item_id=item_id, output_index=index)

    def image_generation(self, phase: str, item_id: str, index: int) -> tuple[str, dict]:
        return self._make(f"response.image_generation_call.{phase}", item_id=item_id, output_index=index)

    def partial_image(self, item_id: str, index: int, b64: str, position: int, settings: dict) -> tuple[str, dict]:
        """A coarse preview while the image is drawn (the tool's `partial_images` of them), with the settings used."""
        return self._make("response.image_generation_call.partial_image", item_id=item_id, output_index=index, partial_image_b64=b64,
                          partial_image_index=position, **settings)

    def shell(self, kind: str, index: int, command_index: int, **fields) -> tuple[str, dict]:
        """`response.shell_call_command.*` (the call's commands) and `response.shell_call_output_content.*` (each one's result)."""
        return self._make(f"response.{kind}", output_index=index, command_index=command_index, **fields)

    def code_interpreter(self, phase: str, item_id: str, index: int) -> tuple[str, dict]:
        return self._make(f"response.code_interpreter_call.{phase}", item_id=item_id, output_index=index)

    def code_delta(self, item_id: str, index: int, delta: str) -> tuple[str, dict]:
        return self._make("response.code_interpreter_call_code.delta", item_id=item_id, output_index=index, delta=delta)

    def code_done(self, item_id: str, index: int, code: str) -> tuple[str, dict]:
        return self._make("response.code_interpreter_call_code.done", item_id=item_id, output_index=index, code=code)
