"""Google's Gemini API (generativelanguage.googleapis.com) as a provider: OpenAI-shaped chat through the
translators, embeddings through :batchEmbedContents, and generateContent relayed as it is for clients that
already speak Gemini.

Errors carry both shapes: `body` in OpenAI's, `native` = (status, Gemini's `{"error": {code, message,
status}}`) for the Gemini endpoints.
"""
from __future__ import annotations

import base64
import struct
from contextlib import aclosing
from typing import Any, AsyncIterator
from urllib.parse import quote

import msgspec

from app.inference.providers.openai_compat import HTTPProvider, NoMedia
from app.inference.translate import gemini as translate


class GeminiProvider(NoMedia, HTTPProvider):
    """base_url without the version prefix (https://generativelanguage.googleapis.com)."""

    kind = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def native_error(self, status: int, message: str) -> dict:
        return translate.openai_error_to_gemini(status, {"error": {"message": message}})

    def to_openai_error(self, status: int, native: dict) -> dict:
        return translate.gemini_error_to_openai(status, native)

    @staticmethod
    def _path(model: str, action: str) -> str:
        return f"/v1beta/models/{quote(model.removeprefix('models/'), safe='-._~')}:{action}"

    def _request(self, params: dict) -> dict:
        try:
            return translate.chat_to_gemini_request(params)
        except ValueError as exc:
            raise self.bad_request(exc) from None

    # ---- chat ----

    async def chat(self, params: dict) -> dict:
        resp = await self.post_json(self._path(params["model"], "generateContent"), self._request(params))
        return translate.gemini_response_to_chat_completion(resp, model=params["model"])

    async def chat_stream(self, params: dict) -> AsyncIterator[dict]:
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        path = self._path(params["model"], "streamGenerateContent") + "?alt=sse"
        async with aclosing(self._responses(path, self._request(params))) as responses, \
                aclosing(translate.gemini_stream_to_chat_chunks(responses, model=params["model"], include_usage=include_usage)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _responses(self, path: str, request: dict) -> AsyncIterator[dict]:
        async with aclosing(self.post_sse(path, request)) as sse:
            async for _, data in sse:
                try:
                    resp = msgspec.json.decode(data)
                except msgspec.DecodeError:
                    raise self.error(502, self.native_error(502, "The upstream provider sent an invalid stream event.")) from None
                if isinstance(resp, dict) and isinstance(resp.get("error"), dict):
                    code = resp["error"].get("code")
                    raise self.error(code if isinstance(code, int) and 400 <= code < 600 else 500, resp)
                yield resp

    # ---- embeddings: text inputs only (Gemini takes no token arrays) ----

    async def embeddings(self, params: dict) -> dict:
        model = params["model"].removeprefix("models/")
        inputs = params.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise self.not_supported("Embedding token arrays (rather than text)")
        one: dict[str, Any] = {"model": f"models/{model}"}
        if params.get("dimensions"):
            one["outputDimensionality"] = params["dimensions"]
        body = {"requests": [{**one, "content": {"parts": [{"text": text}]}} for text in texts]}
        resp = await self.post_json(self._path(model, "batchEmbedContents"), body)
        as_base64 = params.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(resp.get("embeddings") or ()):
            values = item.get("values") or []
            vector: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if as_base64 else values
            data.append({"object": "embedding", "index": index, "embedding": vector})
        # Gemini reports no token counts for embeddings.
        return {"object": "list", "data": data, "model": params["model"], "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    # ---- no Gemini counterpart ----

    async def completions(self, params: dict) -> dict:
        raise self.not_supported("The legacy completions API")

    async def completions_stream(self, params: dict) -> AsyncIterator[dict]:
        raise self.not_supported("The legacy completions API")
        yield {}  # pragma: no cover - makes this an async generator

    async def moderations(self, params: dict) -> dict:
        raise self.not_supported("Moderations")
