"""OpenAI's request and response shapes as pydantic models. Each allows extra fields: requests are
validated with these but relayed as received, so what a newer client adds passes through."""

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


class _Choice(_Open):
    index: int
    finish_reason: str | None = None


class Choice(_Choice):
    message: dict[str, Any]


class ChunkChoice(_Choice):
    delta: dict[str, Any]


class _Completion(_Open):
    id: str
    created: int
    model: str
    usage: dict[str, Any] | None = None


class ChatCompletion(_Completion):
    """A non-streamed answer."""

    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]


class ChatCompletionChunk(_Completion):
    """One `data:` event of a streamed answer."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class ModelCard(_Open):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "upstream"


class ModelList(_Open):
    """`GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
