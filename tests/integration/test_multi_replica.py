"""Two ragbridge processes on one PostgreSQL and one Redis, as behind a load balancer.

A document ingested through replica A is found through replica B; one key's rate limit is
counted once across both; SIGKILL of A in the middle of a streamed answer loses nothing stored.
The replicas start at the same time, so they also run the schema migrations concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.metrics import Scrape
from tests.support.postgres import PostgresForTests
from tests.support.redis import RedisForTests, running_redis
from tests.support.replica import ragbridge_cli, replica_env
from tests.support.server import ServerProcess
from tests.support.upstream import Reply, ScriptedUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ADMIN_KEY = "replicas-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
COLLECTION = "handbook"
DOCUMENTS = {
    "leave.md": (
        "# Paid leave\n\nEvery employee gets twenty-five days of paid vacation each year. "
        "Unused vacation days carry over until the end of March."
    ),
    "expenses.md": (
        "# Travel expenses\n\nTrain tickets and hotel receipts are reimbursed within ten "
        "working days once the expense report is approved by a manager."
    ),
    "leave-ko.txt": (
        "연차 휴가 규정\n\n모든 직원은 매년 열다섯 날의 유급 연차 휴가를 받습니다. "
        "사용하지 않은 연차는 다음 해 삼월까지 이월됩니다."
    ),
}


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    env: dict[str, str]
    upstream: ScriptedUpstream
    redis: RedisForTests


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresForTests, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_server.fresh_schema())
        redis = stack.enter_context(running_redis(tmp / "redis"))
        upstream = stack.enter_context(ScriptedUpstream().serve())
        env = replica_env(
            RAGBRIDGE_DATABASE_URL=database_url,
            RAGBRIDGE_REDIS_URL=redis.url,
            RAGBRIDGE_UPSTREAM_BASE_URL=upstream.url,
            RAGBRIDGE_UPSTREAM_MODEL="gpt-test",
            RAGBRIDGE_API_KEY=ADMIN_KEY,
            RAGBRIDGE_DATA_DIR=str(tmp / "data"),  # unused with PostgreSQL; never shared state
        )
        replicas = [ServerProcess.ragbridge(env, tmp / f"{name}.log") for name in ("a", "b")]
        for replica in replicas:
            stack.callback(replica.kill)
        for replica in replicas:
            replica.wait_ready()
        yield Cluster(replicas[0], replicas[1], env, upstream, redis)


def upload(replica: ServerProcess, name: str) -> dict[str, Any]:
    response = httpx.post(
        f"{replica.url}/v1/collections/{COLLECTION}/documents",
        files={"file": (name, DOCUMENTS[name].encode(), "text/plain")},
        headers=ADMIN,
        timeout=120,  # the first upload loads the embedding model
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def search(replica: ServerProcess, query: str) -> list[dict[str, Any]]:
    body = {"collection": COLLECTION, "query": query, "top_k": 3}
    response = httpx.post(f"{replica.url}/v1/search", json=body, headers=ADMIN, timeout=120)
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["data"]
    return hits


def stored(replica: ServerProcess) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The collection (with its counts) and its documents, as `replica` reads them."""
    info = httpx.get(f"{replica.url}/v1/collections/{COLLECTION}", headers=ADMIN, timeout=30)
    docs = httpx.get(f"{replica.url}/v1/collections/{COLLECTION}/documents", headers=ADMIN)
    assert info.status_code == docs.status_code == 200, (info.text, docs.text)
    return info.json(), sorted(docs.json()["data"], key=lambda d: d["id"])


def test_a_document_ingested_through_one_replica_is_found_through_the_other(
    cluster: Cluster,
) -> None:
    for name in DOCUMENTS:
        assert upload(cluster.a, name)["chunks"] >= 1
    info, docs = stored(cluster.b)
    assert {d["source"] for d in docs} == set(DOCUMENTS)
    assert info["document_count"] == len(DOCUMENTS)
    question = "How many days of paid vacation do I get?"
    assert search(cluster.b, question)[0]["name"] == "leave.md"
    assert search(cluster.b, "hotel receipts reimbursed")[0]["name"] == "expenses.md"
    assert search(cluster.b, "유급 연차 휴가는 며칠인가요?")[0]["name"] == "leave-ko.txt"
    # A answers B's question from the shared cache (the query vector B put in Redis).
    hits_before = Scrape(cluster.a.url).value("ragbridge_cache_lookups_total", result="hit")
    assert search(cluster.a, question)[0]["name"] == "leave.md"
    assert Scrape(cluster.a.url).value("ragbridge_cache_lookups_total", result="hit") > hits_before


def test_a_keys_rate_limit_is_shared_across_replicas(cluster: Cluster) -> None:
    created = ragbridge_cli(cluster.env, "keys", "create", "--name", "shared-team", "--rpm", "5")
    auth = {"Authorization": f"Bearer {created.strip().splitlines()[-1]}"}

    def status(replica: ServerProcess) -> int:
        return httpx.get(f"{replica.url}/v1/collections", headers=auth, timeout=30).status_code

    assert [status(r) for r in (cluster.a, cluster.b, cluster.a, cluster.b, cluster.a)] == [200] * 5
    assert status(cluster.b) == 429
    assert status(cluster.a) == 429
    with cluster.redis.client() as plain:
        assert plain.zcard("ragbridge:ratelimit:{shared-team}:requests") == 5


def test_killing_a_replica_mid_stream_loses_nothing_stored(cluster: Cluster) -> None:
    for name in DOCUMENTS:  # unchanged if the first test ran; complete on its own otherwise
        upload(cluster.a, name)
    before = stored(cluster.b)
    cluster.upstream.script(Reply(tokens=[f"word{i} " for i in range(200)], token_delay=0.05))
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    received = 0
    with (
        pytest.raises(httpx.TransportError),
        httpx.stream(
            "POST", f"{cluster.a.url}/v1/chat/completions", json=body, headers=ADMIN, timeout=30
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            received += line.startswith("data: ")
            if received == 3:
                cluster.a.kill()  # SIGKILL in the middle of the answer
    assert received >= 3

    assert stored(cluster.b) == before  # every document and every count, unchanged
    assert search(cluster.b, "paid vacation days")[0]["name"] == "leave.md"
    answer = httpx.post(
        f"{cluster.b.url}/v1/chat/completions",
        json={**body, "stream": False},
        headers=ADMIN,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10  # the dead replica's upstream call ends, not left hanging
    while cluster.upstream.streams[-1].outcome == "streaming" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.upstream.streams[-1].outcome == "client_disconnected"
