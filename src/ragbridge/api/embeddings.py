"""`POST /v1/embeddings`, OpenAI-compatible, so Open WebUI's own RAG or any tool can use our model.
Inputs too long are truncated as sentence-transformers does (OpenAI would refuse them); token
arrays, another model's tokens, are refused."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from ragbridge.api.deps import get_ragbridge
from ragbridge.api.security import require_principal
from ragbridge.api.usage import record_usage
from ragbridge.embeddings.names import same_model
from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.store.base import Vector

router = APIRouter(tags=["embeddings"], dependencies=[Depends(require_principal)])

MAX_INPUTS = 2048
"""Most texts in one request, as OpenAI allows."""


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; unknown fields (`user`, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


def _texts(value: str | list[Any]) -> list[str]:
    """The request's texts, or a 400 saying what is wrong with them."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise InvalidRequest("'input' must not be empty.", param="input", code="empty_input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(
            f"'input' has {len(texts)} items; at most {MAX_INPUTS} are allowed per request.",
            param="input",
            code="too_many_inputs",
        )
    for index, text in enumerate(texts):
        if isinstance(text, int | list):
            raise InvalidRequest(
                "Token arrays are not supported: send the text itself (they would be another "
                "model's tokens; in LangChain set check_embedding_ctx_length=False).",
                param="input",
                code="unsupported_input",
            )
        if not isinstance(text, str):
            raise InvalidRequest(
                f"'input[{index}]' must be a string.", param="input", code="invalid_input"
            )
        if not text:
            where = "'input'" if isinstance(value, str) else f"'input[{index}]'"
            raise InvalidRequest(f"{where} must not be empty.", param="input", code="empty_input")
    return texts


def _encode(vector: Vector, encoding_format: str) -> Vector | str:
    if encoding_format == "base64":  # OpenAI's format: little-endian float32 bytes
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector  # orjson writes float32 arrays as JSON numbers, ten times faster than json


@router.post("/v1/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> Response:
    """Embed one text or a list of texts with the configured embedding model."""
    embedder = get_ragbridge(request).embedder
    if not same_model(body.model, embedder.name):
        raise NotFound(
            f"The model '{body.model}' does not exist; this server embeds with '{embedder.name}'.",
            param="model",
            code="model_not_found",
        )
    texts = _texts(body.input)
    if body.dimensions is not None and body.dimensions != await asyncio.to_thread(
        lambda: embedder.dimension  # may load the model
    ):
        raise InvalidRequest(
            f"'dimensions' cannot change the size of {embedder.name}'s vectors "
            f"({embedder.dimension}).",
            param="dimensions",
            code="unsupported_parameter",
        )
    if len(texts) == 1:
        vectors = np.asarray([await embedder.embed_query(texts[0])])
    else:
        vectors = await embedder.embed_documents(texts)
    # Tokenizing up to the body limit (8 MB) takes seconds: off the event loop.
    tokens = await asyncio.to_thread(lambda: sum(embedder.count_tokens(text) for text in texts))
    await record_usage(request, model=embedder.name, prompt_tokens=tokens, completion_tokens=0)
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(row, body.encoding_format)}
        for index, row in enumerate(vectors)
    ]
    answer = {
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json")
