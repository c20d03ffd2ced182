"""`LocalModel`: one GGUF model served as an upstream (same calls and chunks as the HTTP client),
loaded and run on one worker thread, one request at a time; at most
`RAGBRIDGE_LOCAL_QUEUE_SIZE` wait (more get a 429), and a closed stream stops at the next token."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from prometheus_client import Counter, Gauge

from ragbridge.errors import NotFound, RateLimited, ServiceUnavailable
from ragbridge.llm.local import generate
from ragbridge.llm.local.generate import Job, LocalReply
from ragbridge.llm.local.options import parse_generation
from ragbridge.llm.local.runtime import (
    LlamaOptions,
    Loaded,
    LocalModelUnavailable,
    json_grammar,
    load,
    local_model_problem,
)
from ragbridge.llm.tasks import task_prompt, task_reply, task_shape
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

log = logging.getLogger(__name__)

OWNED_BY = "ragbridge-local"


def check_local_model(settings: Settings) -> None:
    """At start: a configured local model needs the extra and a GGUF file (one clear line)."""
    if settings.local_model is not None and (problem := local_model_problem(settings.local_model)):
        raise LocalModelUnavailable(problem)


def model_id(path: Path) -> str:
    """The id a GGUF file is served under: its file name without `.gguf`."""
    return path.name.removesuffix(".gguf").removesuffix(".GGUF")


def not_this_model(requested: str, local_id: str) -> NotFound:
    """The 404 for a model id the local model does not serve."""
    return NotFound(
        f"The model '{requested}' does not exist; the local model is '{local_id}'.",
        param="model",
        code="model_not_found",
    )


class LocalMetrics:
    """The local model's counters, in the app's registry."""

    def __init__(self, metrics: Metrics) -> None:
        reg = metrics.registry
        self.tokens = Counter(
            "ragbridge_local_llm_tokens",
            "Tokens the local model read (prompt) and generated (completion).",
            ["kind"],
            registry=reg,
        )
        self.rejected = Counter(
            "ragbridge_local_llm_rejected",
            "Requests refused with 429 because the local model's queue was full.",
            registry=reg,
        )
        self.waiting = Gauge(
            "ragbridge_local_llm_waiting", "Requests waiting for the local model.", registry=reg
        )
        self.completion = self.tokens.labels("completion")


class LocalModel:
    """A GGUF model run in-process by llama.cpp, served under `model_id(path)`."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        if settings.local_model is None:
            raise ValueError("LocalModel needs settings.local_model")
        self.path = settings.local_model
        self.id = model_id(self.path)
        self.context_tokens = settings.local_context_tokens
        self._options = LlamaOptions(
            path=self.path,
            context_tokens=settings.local_context_tokens,
            threads=settings.local_threads,
            gpu_layers=settings.local_gpu_layers,
            batch_tokens=min(512, settings.local_context_tokens),
        )
        self._queue_size = settings.local_queue_size
        self._task_max_tokens = settings.local_task_max_tokens
        self._metrics = LocalMetrics(metrics or Metrics())
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-llm")
        self._loading: asyncio.Future[Loaded] | None = None
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._seconds_per_request = 2.0  # running estimate, for Retry-After
        self.created = int(time.time())

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading the model on the worker thread (returns at once)."""
        self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    def _load(self) -> Loaded:
        started = time.perf_counter()
        try:
            model = load(self._options)
        except Exception as exc:
            log.error("local model %s did not load: %s", self.path, exc)
            raise
        log.info(
            "local model %s loaded in %.1fs (context %d tokens, chat template: %s)",
            self.id,
            time.perf_counter() - started,
            model.context_tokens,
            model.template_source,
        )
        return model

    async def aclose(self) -> None:
        """Free the model once the worker is idle."""
        if self._loading is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait({self._loading})
            if not self._loading.cancelled() and self._loading.exception() is None:
                model = self._loading.result()
                await asyncio.get_running_loop().run_in_executor(self._executor, model.llama.close)
        self._executor.shutdown(wait=False)

    def status(self) -> dict[str, Any]:
        """For `/ready`: loading, ok or error."""
        if self._loading is None or not self._loading.done():
            return {"status": "loading", "model": self.id}
        if (exc := self._loading.exception()) is not None:
            return {"status": "error", "model": self.id, "detail": str(exc)}
        return {"status": "ok", "model": self.id, "waiting": self._waiting}

    # --- the upstream interface -------------------------------------------------------------
    async def list_models(self) -> list[dict[str, Any]]:
        """This model's `/v1/models` entry."""
        return [{"id": self.id, "object": "model", "created": self.created, "owned_by": OWNED_BY}]

    async def resolve_model(self, requested: str) -> str:
        """This model's id, or NotFound naming it."""
        if requested != self.id:
            raise not_this_model(requested, self.id)
        return requested

    async def complete(self, body: dict[str, Any], incoming: Mapping[str, str]) -> dict[str, Any]:
        """A non-streamed `chat.completion`, with usage."""
        async with self.open_stream(body, incoming) as reply:
            return reply.completion or reply.finished(*await reply.text())

    @asynccontextmanager
    async def open_stream(
        self, body: dict[str, Any], incoming: Mapping[str, str]
    ) -> AsyncIterator[LocalReply]:
        """A streamed answer, open once the first token or an error (a full queue, a prompt over
        the context window: still a plain HTTP error) is there; leaving it stops generation."""
        del incoming  # no headers to map: nothing leaves the process
        generation = parse_generation(body)
        task = task_prompt(body)
        shape = task_shape(task) if task is not None else None
        if task is not None:
            limit = min(generation.max_tokens or self._task_max_tokens, self._task_max_tokens)
            generation = replace(generation, max_tokens=limit)
        async with self._turn():
            model = await self._model()
            loop = asyncio.get_running_loop()
            grammar = json_grammar(shape.schema()) if shape is not None else None
            job = Job(generation, loop, grammar=grammar, on_token=self._metrics.completion.inc)
            running = loop.run_in_executor(self._executor, generate.run, model, job)
            try:
                reply = LocalReply(self.id, job)
                if task is None:
                    await reply.first()
                else:  # a task: the whole (short) answer, checked
                    text, finish = await reply.text()
                    reply.completion = reply.finished(task_reply(task, shape, text), finish)
                yield reply
            finally:
                job.cancel.set()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({running})
                self._metrics.tokens.labels("prompt").inc(job.prompt_tokens)

    # --- queue ------------------------------------------------------------------------------
    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The model to ourselves, after those ahead of us; a full queue raises 429."""
        if self._lock.locked() and self._waiting >= self._queue_size:
            self._metrics.rejected.inc()
            wait = math.ceil(self._seconds_per_request * (self._waiting + 1))
            raise RateLimited(
                f"The local model is busy: {self._waiting} request(s) are already waiting "
                f"(RAGBRIDGE_LOCAL_QUEUE_SIZE={self._queue_size}). Retry after {wait}s.",
                code="local_model_busy",
                headers={"Retry-After": str(max(1, wait))},
            )
        self._waiting += 1
        self._metrics.waiting.set(self._waiting)
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
            self._metrics.waiting.set(self._waiting)
        started = time.monotonic()
        try:
            yield
        finally:
            self._lock.release()
            took = time.monotonic() - started
            self._seconds_per_request = 0.8 * self._seconds_per_request + 0.2 * took

    async def _model(self) -> Loaded:
        if self._loading is None:
            raise ServiceUnavailable("The local model was not started.")
        try:
            return await asyncio.shield(self._loading)
        except LocalModelUnavailable as exc:
            raise ServiceUnavailable(f"The local model is unavailable: {exc}") from None
