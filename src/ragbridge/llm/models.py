"""Upstream model ids: match a requested name the way upstreams accept names, and pick a default.

Ollama answers `llama3.2` for the listed `llama3.2:latest`; servers list `org/name` ids that users
type as `name`, or in another case. `match_model` maps such a request to the listed id (exact
first, then case-insensitive, then the `:latest` tag, then an `org/` prefix, only when unique).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Ids of models that cannot answer a chat: embeddings, images, audio, speech, moderation...
_NOT_CHAT = re.compile(
    r"embed|dall-e|gpt-image|image-|imagen|stable-diffusion|sdxl|flux|tts|whisper|audio|"
    r"transcribe|speech|moderation|rerank|realtime|sora|^babbage-002$|^davinci-002$|"
    r"(^|[/_-])(bge|e5|gte|minilm|mpnet|clip)([/_.:-]|$)",
    re.IGNORECASE,
)
_DEFAULT_TAG = ":latest"


def is_chat_model(model_id: str) -> bool:
    """Whether an upstream id names a model that can answer chats (judged by its name)."""
    return _NOT_CHAT.search(model_id) is None


def default_chat_model(listed: Sequence[str]) -> str | None:
    """The first listed model that can chat, or None."""
    return next((model for model in listed if is_chat_model(model)), None)


def match_model(requested: str, listed: Sequence[str]) -> str | None:
    """The listed id the upstream would serve for `requested`, or None when none matches."""
    if requested in listed:
        return requested
    wanted = requested.casefold()
    rules = (
        lambda listed_id: listed_id == wanted,
        lambda listed_id: ":" not in wanted and listed_id == wanted + _DEFAULT_TAG,
        lambda listed_id: _bare(listed_id) == _bare(wanted),
    )
    for rule in rules:
        found = [model for model in listed if rule(model.casefold())]
        if len(found) == 1:
            return found[0]
    return None


def _bare(model_id: str) -> str:
    """An id without its `org/` prefix and its `:latest` tag."""
    name = model_id.rsplit("/", 1)[-1]
    return name.removesuffix(_DEFAULT_TAG)
