"""No cold start: `ragbridge serve` loads the embedding model and the collections' vectors in
the background, `/ready` says when they are warm, and the first search then finds them loaded.

Timings are printed (run with `-s`), not asserted: speed targets live in bench/ and docs/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ragbridge_env, ragbridge_serve

ADMIN_KEY = "warm-start-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NOTES = (
    "Seoul winters are cold and dry; January averages minus two degrees.\n\n"
    "서울의 겨울은 춥고 건조하다. 1월 평균 기온은 영하 2도이다.\n\n"
    "Busan by the sea is milder, and snow there is rare.\n"
)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # two model loads on a busy machine


def warm_part(url: str, timeout: float = 600.0) -> dict[str, Any]:
    """Poll `/ready` until its `warm` part is `ok`; returns that part."""
    deadline = time.monotonic() + timeout
    while True:
        try:  # on a busy machine, a probe can wait behind the warm-up's model loading
            body = httpx.get(url + "/ready", headers=AUTH, timeout=30).json()  # admin: details
        except httpx.TimeoutException:
            assert time.monotonic() < deadline, "/ready did not answer"
            continue
        warm: dict[str, Any] = body["checks"]["warm"]
        assert warm["status"] != "error", body
        if warm["status"] == "ok":
            return warm
        assert time.monotonic() < deadline, f"never warm: {body}"
        time.sleep(0.1)


def test_first_query_after_serve_finds_everything_loaded(tmp_path: Path) -> None:
    env = ragbridge_env(tmp_path / "data", RAGBRIDGE_API_KEY=ADMIN_KEY)
    with ragbridge_serve(env, tmp_path / "ingest.log", stop_timeout=0) as server:
        url = server.url
        upload = httpx.post(
            url + "/v1/collections/weather/documents",
            files={"file": ("weather.txt", NOTES.encode())},
            headers=AUTH,
            timeout=600,
        )
        assert upload.status_code in (200, 201), upload.text

    with ragbridge_serve(env, tmp_path / "serve.log", stop_timeout=0) as server:
        url = server.url
        early = httpx.get(url + "/ready", headers=AUTH, timeout=30).json()["checks"]["warm"]
        warm = warm_part(url)
        # the model was loaded (and one query encoded) before any query was sent: the first
        # search below cannot be the one that loads it
        assert warm["embedder"] == "ok" and warm["collections"] == "ok"
        assert warm["seconds"]["embedder"] > 0
        timings = []
        queries = [f"How cold is winter in Seoul? ({i})" for i in range(9)]
        queries.insert(1, "서울의 겨울 날씨는 어떤가요?")
        for query in queries:
            started = time.perf_counter()
            found = httpx.post(
                url + "/v1/search",
                json={"collection": "weather", "query": query, "mode": "hybrid"},
                headers=AUTH,
                timeout=60,
            )
            timings.append((time.perf_counter() - started) * 1000)
            assert found.status_code == 200, found.text
            assert any("서울" in hit["text"] or "Seoul" in hit["text"]
                       for hit in found.json()["data"])  # fmt: skip
        assert httpx.get(url + "/ready", headers=AUTH, timeout=30).json()["checks"]["warm"] == warm
    print(
        f"\nwarm after start: {early['status']} at first probe, embedder loaded in "
        f"{warm['seconds']['embedder']} s; search 1st {timings[0]:.0f} ms, "
        f"10th {timings[-1]:.0f} ms"
    )
