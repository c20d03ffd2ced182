"""Where a cited passage opens (the console's document page, or the JSON view with
`RAGBRIDGE_CONSOLE=false`, `#chunk-{position}`), and the passages as Open WebUI `source` events,
a `sources` list and OpenAI `url_citation` annotations."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request

from ragbridge.prompts import source_event, source_label
from ragbridge.settings import Settings
from ragbridge.store.base import ChunkRecord, SearchHit

_MARKER = re.compile(r"\[(\d{1,3})\]")


def passage_url(
    base_url: str, collection: str, document_id: str, position: int, *, console: bool = False
) -> str:
    """The stable URL opening one passage: the console's document page when `console`, else
    the JSON view of its document; `#chunk-{position}` points at the passage in either."""
    path = f"collections/{quote(collection, safe='')}/documents/{quote(document_id, safe='')}"
    prefix = "" if console else "v1/"
    return f"{base_url.rstrip('/')}/{prefix}{path}#chunk-{position}"


def chunk_url(base_url: str, chunk: ChunkRecord, *, console: bool = False) -> str:
    """`passage_url` for a stored chunk."""
    return passage_url(
        base_url, chunk.collection, chunk.document_id, chunk.position, console=console
    )


def public_base_url(request: Request, settings: Settings) -> str:
    """The absolute base URL clients reach ragbridge at: RAGBRIDGE_PUBLIC_URL, else the
    request's own (scheme, host and any root path), without a trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def url_annotations(text: str, sources: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """`url_citation` annotations for an answer citing `sources` (`(url, title)`, numbered
    from 1 as in the prompt): exactly one per source, in source order, spanning its first `[n]`
    in `text` (an empty span at the end when never marked), so that clients numbering them as
    they come (Open WebUI) keep `[n]` pointing at source n even when a passage is cited twice."""
    first: dict[int, tuple[int, int]] = {}
    for match in _MARKER.finditer(text):
        first.setdefault(int(match.group(1)), (match.start(), match.end()))
    annotations = []
    for number, (url, title) in enumerate(sources, start=1):
        start, end = first.get(number, (len(text), len(text)))
        cite = {"url": url, "title": title, "start_index": start, "end_index": end}
        annotations.append({"type": "url_citation", "url_citation": cite})
    return annotations


def link_titles(hits: Sequence[SearchHit], urls: Sequence[str]) -> list[tuple[str, str]]:
    """`(url, title)` per passage, numbered as in the prompt; none when there are no links."""
    if not all(urls):
        return []
    return [(url, source_label(hit)) for hit, url in zip(hits, urls, strict=True)]


def annotate_completion(completion: dict[str, Any], sources: Sequence[tuple[str, str]]) -> None:
    """Put `url_citation` annotations on each choice's message of a `chat.completion`."""
    if not sources:
        return
    for choice in completion.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            text = message.get("content")
            message["annotations"] = url_annotations(text if isinstance(text, str) else "", sources)


class StreamAnnotator:
    """Collects a streamed answer's text and puts the `url_citation` annotations for all of it
    on the delta of the chunk that finishes the first choice (spans need the whole text)."""

    def __init__(self, sources: Sequence[tuple[str, str]]) -> None:
        self._sources = sources
        self._text: list[str] = []
        self._done = not sources

    def add(self, chunk: dict[str, Any]) -> None:
        if self._done:
            return
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            return
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(content := delta.get("content"), str):
            self._text.append(content)
        if choice.get("finish_reason"):
            delta["annotations"] = url_annotations("".join(self._text), self._sources)
            self._done = True


def source_chunks(
    hits: Sequence[SearchHit], urls: Sequence[str], chunk: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One Open WebUI source event per passage, each also a valid (choice-less) chunk of the
    answer that `chunk` belongs to, so strict OpenAI clients parse it too."""
    head = {
        "id": chunk.get("id", ""),
        "object": "chat.completion.chunk",
        "created": chunk.get("created", int(time.time())),
        "model": chunk.get("model", ""),
        "choices": [],
    }
    return [{**head, **source_event(hit, url)} for hit, url in zip(hits, urls, strict=True)]
