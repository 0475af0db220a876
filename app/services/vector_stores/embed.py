"""Embedding texts for a vector store through the inference router (offline by default; an upstream
embedding model when the store's model is routed to one)."""
from __future__ import annotations

import base64

import numpy as np

from app.services.inference import InferenceService

BATCH = 256  # inputs per embeddings call: OpenAI accepts 2048, smaller keeps memory and latency even


async def embed_texts(inference: InferenceService, tenant_id: str, model: str, texts: list[str]) -> np.ndarray:
    """Unit-norm float32 rows, one per text."""
    rows: list[np.ndarray] = []
    for start in range(0, len(texts), BATCH):
        result = await inference.call(tenant_id, "embeddings", {"model": model, "input": texts[start:start + BATCH], "encoding_format": "base64"},
                                      endpoint="vector_stores")
        for item in sorted(result["data"], key=lambda d: d["index"]):
            vector = item["embedding"]
            rows.append(np.frombuffer(base64.b64decode(vector), dtype="<f4") if isinstance(vector, str) else np.asarray(vector, dtype=np.float32))
    matrix = np.vstack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)
