"""One generation on the model's worker thread, its events handed to the event loop as they come.

The worker formats the conversation with the model's chat template, checks it fits the context
window, then streams `Llama.create_completion`: each piece of text is posted to the loop the
moment llama.cpp releases it. Posting is cheap on the worker (on the token's critical path): the
piece goes on a deque, and the loop is woken only when no wake-up is already pending, so a loop
that falls behind takes every piece posted meanwhile in one wake-up. A stopping criterion,
called by llama.cpp after every sampled token, counts tokens and ends generation at once when
the request is cancelled (client gone).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ragbridge.errors import InvalidRequest, RagbridgeError, UpstreamError
from ragbridge.llm.local.options import Generation
from ragbridge.llm.local.runtime import Loaded

Event = tuple[str, Any]
"""("text", str), ("end", finish_reason) or ("error", RagbridgeError)."""


@dataclass
class Job:
    """One request's generation: its inputs, cancel flag, token counts and posted events."""

    generation: Generation
    loop: asyncio.AbstractEventLoop
    grammar: Any = None
    on_token: Callable[[], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_after_cancel: int = 0
    _posted: deque[Event] = field(default_factory=deque)
    _wake_pending: bool = False
    _waiter: asyncio.Future[None] | None = None

    def post(self, kind: str, value: Any) -> None:
        """Hand one event to the loop (from the worker thread; no lock, at most one wake-up
        in flight)."""
        self._posted.append((kind, value))
        if self._wake_pending:  # the loop has yet to run the last wake-up: it will see this too
            return
        self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()

    def _wake(self) -> None:
        """On the loop: let the reader take what was posted."""
        self._wake_pending = False  # before the reader drains: a later post wakes it again
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Event]:
        """Every event posted since the last call, in order (waits for at least one)."""
        while not self._posted:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        posted = self._posted
        return [posted.popleft() for _ in range(len(posted))]

    def count(self, input_ids: Any, _logits: Any) -> bool:
        """llama.cpp's stopping criterion: called once per sampled token; True stops."""
        if self.cancel.is_set():
            self.tokens_after_cancel += 1
            return True
        if not self.prompt_tokens:
            self.prompt_tokens = len(input_ids)
        self.completion_tokens = len(input_ids) - self.prompt_tokens + 1
        if self.on_token is not None:
            self.on_token()
        return False


def run(model: Loaded, job: Job) -> None:
    """Generate for `job` (blocking; on the model's worker thread). Always posts a last event."""
    try:
        from llama_cpp import StoppingCriteriaList

        prompt, stop, criteria = _prompt(model, job.generation)
        if job.cancel.is_set():
            job.post("end", "stop")
            return
        stream = model.llama.create_completion(
            prompt=prompt,
            stream=True,
            stopping_criteria=StoppingCriteriaList([*criteria, job.count]),
            grammar=job.grammar,
            **{**job.generation.sampling(), "stop": stop},
        )
        finish = "stop"
        try:
            for chunk in stream:
                if job.cancel.is_set():
                    break
                choice = chunk["choices"][0]
                if text := choice["text"]:
                    job.post("text", text)
                finish = choice.get("finish_reason") or finish
        finally:
            stream.close()
        job.post("end", finish)
    except RagbridgeError as exc:
        job.post("error", exc)
    except Exception as exc:  # llama.cpp failed mid-way: the client gets an error, we go on
        job.post("error", UpstreamError(f"The local model failed: {exc or type(exc).__name__}"))


def _prompt(model: Loaded, generation: Generation) -> tuple[list[int], list[str], list[Any]]:
    """The prompt tokens, stop strings and stopping criteria for `generation`."""
    import jinja2

    try:
        result = model.formatter(messages=generation.messages)
    except (ValueError, jinja2.TemplateError) as exc:
        raise InvalidRequest(
            f"The local model's chat template rejected the messages: {exc}", param="messages"
        ) from None
    prompt: list[int] = model.llama.tokenize(
        result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
    )
    window = model.context_tokens
    if len(prompt) >= window:
        raise InvalidRequest(
            f"This model's maximum context length is {window} tokens, but the messages take "
            f"{len(prompt)} tokens. Shorten the conversation or raise "
            "RAGBRIDGE_LOCAL_CONTEXT_TOKENS.",
            param="messages",
            code="context_length_exceeded",
        )
    extra = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    stop = list(generation.stop) + [s for s in extra if s]
    criteria = list(result.stopping_criteria or [])
    return prompt, stop, criteria
