"""A ragbridge on loopback for the tool server, MCP and Open WebUI tests: an admin key, two
collections (`docs`: the English and Korean chat corpus plus a paged PDF and a Markdown file with
headings; `private`: one file) and a key scoped to `docs` only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ragbridge.app import create_app
from ragbridge.settings import Settings
from tests.support.documents import markdown_bytes, pdf_bytes
from tests.support.rag import PASSAGES
from tests.support.server import serve_in_thread
from tests.support.upstream import ScriptedUpstream, gateway_settings

ADMIN_KEY = "sk-admin-tools-test"
PRIVATE_TEXT = "The private launch code word is OSPREY-77."


@dataclass(frozen=True)
class ToolsServer:
    url: str
    admin_key: str
    scoped_key: str  # sees `docs` only


def upload(client: httpx.Client, collection: str, name: str, content: bytes) -> dict[str, Any]:
    response = client.post(
        f"/v1/collections/{collection}/documents", files={"file": (name, content)}
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


@contextmanager
def tools_server(data_dir: Path, upstream: ScriptedUpstream | None = None) -> Iterator[ToolsServer]:
    """ragbridge with the corpus ingested; with `upstream`, RAG chat answers through it."""
    overrides: dict[str, Any] = gateway_settings(upstream) if upstream is not None else {}
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        sample_collection=False,
        database_url=None,
        api_key=ADMIN_KEY,
        upstream_model="stub-alpha" if upstream is not None else None,
        console=False,  # passages link to the JSON view, which these tests read back
        **overrides,
    )
    with serve_in_thread(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            for name, text in PASSAGES.items():
                upload(client, "docs", name, text.encode())
            upload(client, "docs", "aurora-manual.pdf", pdf_bytes())
            upload(client, "docs", "zephyr.md", markdown_bytes())
            upload(client, "private", "secret.txt", PRIVATE_TEXT.encode())
            created = client.post("/v1/keys", json={"name": "docs-only", "collections": ["docs"]})
            assert created.status_code == 201, created.text
            yield ToolsServer(url, ADMIN_KEY, created.json()["key"])
