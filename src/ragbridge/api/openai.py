"""OpenAI-compatible routes: `GET /v1/models`, `POST /v1/chat/completions`.

A stream is committed (200, `text/event-stream`) once the first payload arrives or after
`keepalive_interval` seconds, whichever comes first; until then a failure is a plain HTTP error.
After it, `: keep-alive` comments fill every silence of that length, and a failure is sent as a
`data: {"error": ...}` event followed by `data: [DONE]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ragbridge.api.deps import get_chat, get_settings
from ragbridge.api.errors import error_body
from ragbridge.api.schemas import ChatCompletion, ChatCompletionRequest, ModelList
from ragbridge.api.security import (
    Principal,
    ensure_model_access,
    require_principal,
    visible_models,
)
from ragbridge.api.usage import metered, record_completion
from ragbridge.citations import public_base_url
from ragbridge.errors import RagbridgeError
from ragbridge.llm.prefetch import Prefetch
from ragbridge.llm.sse import DONE, KEEPALIVE, encode_event

log = logging.getLogger(__name__)

router = APIRouter(tags=["openai"], dependencies=[Depends(require_principal)])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/v1/models", response_model=ModelList)
async def list_models(
    request: Request, principal: Principal = Depends(require_principal)
) -> dict[str, Any]:
    """The models a client can pick; an unreachable upstream is a 502, not an empty list."""
    models = await get_chat(request).list_models()
    return {"object": "list", "data": visible_models(principal, models)}


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "description": "A `chat.completion`, or with `stream: true` an SSE stream of chunks.",
            "content": {"text/event-stream": {}},
        }
    },
)
async def chat_completions(request_body: ChatCompletionRequest, request: Request) -> Response:
    """One chat turn. The body was validated as `request_body`; the raw JSON is what is relayed.

    Services come from plain calls, not `Depends`: FastAPI runs sync dependencies in its thread
    pool, a hop per request that costs more than the lookups themselves.
    """
    chat, settings = get_chat(request), get_settings(request)
    ensure_model_access(request.state.principal, request_body.model)
    turn = chat.turn(await request.json(), request.headers, public_base_url(request, settings))
    if not request_body.stream:
        completion = await chat.complete(turn)
        await record_completion(request, turn.model, completion)
        return JSONResponse(completion)
    payloads = Prefetch(metered(request, turn.model, chat.stream(turn)))
    if await payloads.wait(settings.keepalive_interval) and (failure := payloads.error()):
        await payloads.aclose()
        raise failure  # nothing was sent yet: a plain HTTP error
    body = _relay(payloads, settings.keepalive_interval)
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def _relay(payloads: Prefetch[str], interval: float) -> AsyncIterator[bytes]:
    """SSE bytes: payloads as they come, keep-alives in silences, errors as events, `[DONE]`.

    What has arrived together goes out in one write (fewer syscalls); nothing waits for more.
    """
    try:
        finished = False
        while not finished:
            if not await payloads.wait(interval):
                yield KEEPALIVE
                continue
            out = bytearray()
            while not finished and payloads.ready():
                try:
                    out += encode_event(payloads.take())
                except StopAsyncIteration:
                    finished = True
                except RagbridgeError as exc:
                    log.warning("stream failed after it was committed: %s", exc.message)
                    body = error_body(exc.message, exc.status, type=exc.type, code=exc.code)
                    out += encode_event(json.dumps(body))
                    finished = True
                except Exception:
                    log.exception("stream failed after it was committed")
                    out += encode_event(json.dumps(error_body("Internal server error.", 500)))
                    finished = True
            yield bytes(out + DONE) if finished else bytes(out)
    finally:
        with anyio.CancelScope(shield=True):
            await payloads.aclose()
