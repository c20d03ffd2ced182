"""OpenAI's request and response shapes, as pydantic models.

Requests are validated with these but relayed as received: every model allows extra fields, so
whatever OpenAI (or a newer client) adds passes through to the upstream unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    """One message of the history; text or a list of content parts."""

    role: Role
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Open):
    """`POST /v1/chat/completions`: a model id and a non-empty history; all else passes through."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None


class Choice(_Open):
    index: int
    message: dict[str, Any]
    finish_reason: str | None = None


class ChatCompletion(_Open):
    """A non-streamed answer."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: dict[str, Any] | None = None


class ChunkChoice(_Open):
    index: int
    delta: dict[str, Any]
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One `data:` event of a streamed answer."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: dict[str, Any] | None = None


class ModelCard(_Open):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "upstream"


class ModelList(_Open):
    """`GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
