"""An OpenAI chat request as llama.cpp generation arguments, checked before anything runs: what a
single local model cannot do (`n` > 1, tools, images) is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ragbridge.errors import InvalidRequest
from ragbridge.retrieval.query import message_text

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class Generation:
    """What to generate for one request."""

    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    json_object: bool = False
    include_usage: bool = False

    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for `Llama.create_completion` (without prompt and callbacks)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            # OpenAI samples from top_p alone: llama.cpp's extra filters are switched off.
            "top_k": 0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "seed": self.seed,
            "stop": self.stop,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logit_bias": self.logit_bias or None,
        }


def parse_generation(body: Mapping[str, Any]) -> Generation:
    """The generation `body` asks for; an unsupported or malformed field raises InvalidRequest."""
    for name in ("tools", "functions"):
        if body.get(name):
            raise InvalidRequest(
                f"The local model does not support `{name}` (function calling).", param=name
            )
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("The local model generates one choice per request (n=1).", param="n")
    options = body.get("stream_options")
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind not in (None, "text", "json_object"):
        raise InvalidRequest(
            f"The local model supports response_format text or json_object, not {kind!r}.",
            param="response_format",
        )
    return Generation(
        messages=_messages(body.get("messages")),
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=_seed(body.get("seed")),
        stop=_stop(body.get("stop")),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(body.get("logit_bias")),
        json_object=kind == "json_object",
        include_usage=isinstance(options, Mapping) and bool(options.get("include_usage")),
    )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("`messages` must be a non-empty list.", param="messages")
    messages = []
    for message in value:
        role = _ROLES.get(str(message.get("role")) if isinstance(message, Mapping) else "")
        if role is None:
            raise InvalidRequest(
                "The local model takes system, user and assistant messages "
                f"(got role {message.get('role')!r}).",
                param="messages",
            )
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, Mapping) and part.get("type") != "text" for part in content
        ):
            raise InvalidRequest("The local model reads text only.", param="messages")
        messages.append({"role": role, "content": message_text(message)})
    return messages


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"`{name}` must be a positive integer.", param=name)
        return value
    return None


def _number(body: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"`{name}` must be a number from {low} to {high}.", param=name)
    return float(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("`seed` must be an integer.", param="seed")
    return value & 0xFFFFFFFF  # llama.cpp seeds are 32-bit


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise InvalidRequest(
            f"`stop` must be a string or a list of up to {MAX_STOP_SEQUENCES} strings.",
            param="stop",
        )
    return list(stops)


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    try:
        bias = {int(token): float(weight) for token, weight in dict(value).items()}
    except (TypeError, ValueError):
        raise InvalidRequest(
            "`logit_bias` maps token ids to numbers from -100 to 100.", param="logit_bias"
        ) from None
    if not all(-100 <= weight <= 100 for weight in bias.values()):
        raise InvalidRequest("`logit_bias` values go from -100 to 100.", param="logit_bias")
    return bias
