"""One generation on the model's worker thread, read on the event loop as OpenAI chunks. Each
piece of text is posted to the loop as llama.cpp releases it, with at most one wake-up in flight
(cheap on the token's critical path); a stopping criterion ends generation once cancelled."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ragbridge.errors import InvalidRequest, RagbridgeError, UpstreamError
from ragbridge.llm.chunks import Chunk, choice_chunk, finished_completion, usage
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
            return True
        if not self.prompt_tokens:
            self.prompt_tokens = len(input_ids)
        self.completion_tokens = len(input_ids) - self.prompt_tokens + 1
        if self.on_token is not None:
            self.on_token()
        return False


class LocalReply:
    """A local model's answer: `chunks()` for a stream, `text()` for the whole of it, or
    `completion` when the whole answer was made first (tasks), which chat replays as chunks."""

    def __init__(self, model: str, job: Job) -> None:
        self.completion: dict[str, Any] | None = None
        self._model = model
        self._job = job
        self._held: list[Event] = []
        self._head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    async def first(self) -> None:
        """Wait for the first events; an error before any text is raised here."""
        self._held = await self._job.take()
        if self._held[0][0] == "error":
            raise self._held[0][1]

    async def _take(self) -> list[Event]:
        """The next events, in the batch the worker's posts arrived in."""
        held, self._held = self._held, []
        return held or await self._job.take()

    async def chunks(self) -> AsyncIterator[Chunk]:
        """`chat.completion.chunk`s: the role, the text as it comes (the pieces that arrived
        together in one chunk), the finish reason, then usage when
        `stream_options.include_usage` asked for it."""
        yield choice_chunk(self._head, {"role": "assistant", "content": ""})
        while True:
            batch = await self._take()
            texts = [value for kind, value in batch if kind == "text"]
            if texts:
                yield choice_chunk(self._head, {"content": "".join(texts)})
            kind, value = batch[-1]
            if kind == "end":
                yield choice_chunk(self._head, {}, value)
                if self._job.generation.include_usage:
                    usage_ = usage(self._job.prompt_tokens, self._job.completion_tokens)
                    yield {**self._head, "choices": [], "usage": usage_}
                return
            if kind == "error":
                raise value

    async def text(self) -> tuple[str, str]:
        """The whole answer's text and finish reason."""
        parts: list[str] = []
        while True:
            for kind, value in await self._take():
                if kind == "text":
                    parts.append(value)
                elif kind == "end":
                    return "".join(parts), value
                else:
                    raise value

    def finished(self, text: str, finish_reason: str) -> dict[str, Any]:
        """`text` as a `chat.completion`, with the token counts of llama.cpp's own tokenizer."""
        job = self._job
        return finished_completion(
            self._model, text, job.prompt_tokens, job.completion_tokens, finish_reason
        )


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
