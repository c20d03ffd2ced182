"""`ragbridge serve` with no embedding settings reads Korean and English alike: a Korean question
finds the English passage that answers it and an English question the Korean one (hybrid, top
3), and `/v1/search` with `mode: dense` works for Korean. A real server process on loopback,
documents uploaded through the API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ragbridge_env, ragbridge_serve

pytestmark = pytest.mark.slow

ENGLISH = {
    "leave.md": "# Annual leave\n\nEmployees who have completed one year of service receive 15 "
    "days of paid annual leave. Unused leave can be carried over until the end of March.",
    "backup.md": "# Server backups\n\nServer data is backed up automatically every day at 3 "
    "a.m., and backups are kept for 30 days in a second region.",
    "coffee.md": "# Pour-over coffee\n\nBrew with water at around 90 degrees, poured slowly; "
    "let the grounds bloom for about 30 seconds first.",
    "sql.md": "# SQL joins\n\nINNER JOIN returns only rows present in both tables, while LEFT "
    "JOIN keeps every row of the left table and fills the gaps with NULL.",
}
KOREAN = {
    "passport.md": "# 여권 발급\n\n여권은 시청이나 구청 민원실에서 신청할 수 있으며, 본인이 "
    "직접 방문해야 합니다. 발급까지는 보통 일주일 정도 걸립니다.",
    "kimchi.md": "# 김치찌개\n\n김치찌개는 잘 익은 김치와 돼지고기를 함께 볶은 뒤 물을 붓고 "
    "끓여 만듭니다. 두부와 대파는 마지막에 넣습니다.",
    "solar.md": "# 태양광 발전\n\n태양광 발전은 연료가 필요 없지만 밤이나 흐린 날에는 "
    "발전량이 크게 줄어들어 배터리와 함께 설치하는 경우가 많습니다.",
    "parking.md": "# 주차\n\n방문객은 안내 데스크에서 2시간 무료 주차권을 받을 수 있고, "
    "전기차 충전 구역은 충전 중인 차량만 세울 수 있습니다.",
}
CROSS = [
    ("입사 1년 차 직원은 유급 휴가를 며칠 받나요?", "leave.md"),
    ("서버 백업은 몇 시에 하고 얼마나 보관하나요?", "backup.md"),
    ("드립 커피를 내릴 물 온도는 몇 도가 적당해?", "coffee.md"),
    ("How long does it take to get a passport issued?", "passport.md"),
    ("When do you add tofu to kimchi stew?", "kimchi.md"),
    ("Why are batteries installed together with solar panels?", "solar.md"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m ragbridge serve` with no RAGBRIDGE_EMBEDDING_* settings at all."""
    tmp = tmp_path_factory.mktemp("crosslingual")
    env = ragbridge_env(tmp / "data")
    with ragbridge_serve(env, tmp / "serve.log") as served:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            for name, text in {**ENGLISH, **KOREAN}.items():
                response = client.post(
                    "/v1/collections/mixed/documents",
                    files={"file": (name, text.encode(), "text/markdown")},
                )
                assert response.status_code == 201, response.text
        yield served.url


def search(url: str, query: str, mode: str, top_k: int = 3) -> list[str]:
    response = httpx.post(
        url + "/v1/search",
        json={"collection": "mixed", "query": query, "mode": mode, "top_k": top_k},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return [hit["source"] for hit in response.json()["data"]]


def test_the_default_embedder_is_multilingual(server: str) -> None:
    collection = httpx.get(server + "/v1/collections/mixed", timeout=30).json()
    assert collection["embedding_model"] == "universal-sentence-encoder-multilingual"
    assert collection["dimension"] == 512


@pytest.mark.parametrize(("question", "source"), CROSS)
def test_a_question_finds_the_passage_in_the_other_language(
    server: str, question: str, source: str
) -> None:
    assert source in search(server, question, "hybrid")


def test_dense_search_reads_korean(server: str) -> None:
    assert search(server, "여권을 만드는 데 얼마나 걸려요?", "dense", top_k=1) == ["passport.md"]
    assert search(server, "전기차 충전 자리에 차를 세워도 되나요?", "dense", top_k=1) == [
        "parking.md"
    ]
