"""OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions`. A stream is committed (200)
at its first payload or after `keepalive_interval`: before, a failure is a plain HTTP error; after,
an `error` event and `[DONE]`. `RelayStream` cancels the upstream work when the client leaves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ragbridge.api.deps import get_ragbridge, get_settings
from ragbridge.api.relay import CLIENT_GONE, ClientGone, RelayStream, until_disconnect
from ragbridge.api.schemas import ChatCompletion, ChatCompletionRequest, ModelList
from ragbridge.api.security import require_principal, visible_models
from ragbridge.api.usage import metered, record_completion
from ragbridge.citations import public_base_url

router = APIRouter(tags=["openai"], dependencies=[Depends(require_principal)])


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    """The models a client can pick; an unreachable upstream is a 502, not an empty list."""
    models = await get_ragbridge(request).chat.list_models()
    return {"object": "list", "data": visible_models(request.state.principal, models)}


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
    """One chat turn. The body was validated as `request_body`; the raw JSON is what is relayed."""
    # Plain calls, not `Depends`: FastAPI runs sync dependencies in its thread pool (a hop).
    chat, settings = get_ragbridge(request).chat, get_settings(request)
    turn = await chat.turn(
        await request.json(),
        request.headers,
        public_base_url(request, settings),
        caller=request.state.principal,  # authenticated, limits checked and charged on arrival
        prompt_tokens=getattr(request.state, "prompt_estimate", None),
    )
    try:
        if not request_body.stream:
            completion = await until_disconnect(request.receive, chat.complete(turn))
            await record_completion(request, turn, completion)
            return JSONResponse(completion)
        stream = RelayStream(
            metered(request, turn, chat.stream(turn)),
            request.receive,
            settings.keepalive_interval,
        )
        await stream.first()  # a failure now is a plain HTTP error: nothing was sent yet
    except ClientGone:
        return Response(status_code=CLIENT_GONE)  # the upstream call is cancelled already
    return stream  # a Response that owns the stream until its connection ends
