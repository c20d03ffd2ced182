"""Where a cited passage can be opened, and OpenAI-style `url_citation` annotations for answers.

Every passage ragbridge cites gets a stable URL: the web console's document page (when the
console is served, the default), or the JSON view of the document,
`/v1/collections/{collection}/documents/{document_id}` (`RAGBRIDGE_CONSOLE=false`); both point
at the passage with
`#chunk-{position}`. Answers carry the same passages, numbered `[n]` as in the prompt, three
ways: Open WebUI `source` events (streams), a top-level `sources` list (non-streamed) and
OpenAI's `url_citation` annotations (both), which Open WebUI renders on direct connections and
other OpenAI clients read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request

from ragbridge.prompts import source_name
from ragbridge.settings import Settings
from ragbridge.store.base import SearchHit

_MARKER = re.compile(r"\[(\d{1,3})\]")


def passage_url(
    base_url: str, collection: str, document_id: str, position: int, *, console: bool = False
) -> str:
    """The stable URL opening one passage: the console's document page when `console`, else
    the JSON view of its document; `#chunk-{position}` points at the passage in either."""
    path = f"collections/{quote(collection, safe='')}/documents/{quote(document_id, safe='')}"
    prefix = "" if console else "v1/"
    return f"{base_url.rstrip('/')}/{prefix}{path}#chunk-{position}"


def hit_url(base_url: str, hit: SearchHit, *, console: bool = False) -> str:
    """`passage_url` for a search hit."""
    chunk = hit.chunk
    return passage_url(
        base_url, chunk.collection, chunk.document_id, chunk.position, console=console
    )


def public_base_url(request: Request, settings: Settings) -> str:
    """The absolute base URL clients reach ragbridge at: RAGBRIDGE_PUBLIC_URL, else the
    request's own (scheme, host and any root path), without a trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def passage_title(hit: SearchHit) -> str:
    """A passage's title in annotations: its document's name, and page when it has one."""
    page = hit.chunk.metadata.get("page")
    name = source_name(hit)
    return f"{name}, page {page + 1}" if isinstance(page, int) else name


def url_annotations(text: str, sources: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """`url_citation` annotations for an answer citing `sources` (`(url, title)`, numbered
    from 1 as in the prompt), in source order so that annotation order matches `[n]`.

    Each source gets exactly one annotation, spanning its first `[n]` marker in `text` (an
    empty span at the end of the text when the answer never marks it), so that clients that
    number annotations as they come (Open WebUI, which lists one source per annotation) keep
    `[n]` pointing at source n even when the answer cites a passage twice.
    """
    first: dict[int, tuple[int, int]] = {}
    for match in _MARKER.finditer(text):
        first.setdefault(int(match.group(1)), (match.start(), match.end()))
    end_of_text = (len(text), len(text))
    return [
        url_citation(url, title, *first.get(number, end_of_text))
        for number, (url, title) in enumerate(sources, start=1)
    ]


def url_citation(url: str, title: str, start: int, end: int) -> dict[str, Any]:
    """OpenAI's `url_citation` annotation."""
    return {
        "type": "url_citation",
        "url_citation": {"url": url, "title": title, "start_index": start, "end_index": end},
    }
