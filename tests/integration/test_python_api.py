"""The Python API (`ragbridge.open`): ingest Korean files, search them with a Korean question,
answer it extractively and through the scripted upstream, and manage collections and keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

import ragbridge
from ragbridge.errors import InvalidRequest
from ragbridge.settings import Settings
from tests.support.upstream import Reply, ScriptedUpstream

LEAVE = """# 연차 휴가 규정

입사 1년이 지난 직원은 매년 연차 휴가 15일을 받습니다. 3년 이상 근속하면 2년마다 하루씩
늘어나며, 최대 25일까지 받을 수 있습니다. 휴가는 팀장의 승인을 받아 사용합니다.
"""
TRAVEL = """# 출장비 정산

국내 출장의 숙박비는 1박에 12만 원까지 지원합니다. 교통비는 영수증을 첨부해 출장이 끝난 뒤
일주일 안에 재무팀에 청구합니다. 해외 출장은 사전에 본부장의 승인이 필요합니다.
"""
QUESTION = "연차 휴가는 며칠 받을 수 있나요?"


def _write_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "휴가.md").write_text(LEAVE, encoding="utf-8")
    (folder / "출장.md").write_text(TRAVEL, encoding="utf-8")
    return folder


def test_ingest_search_and_extractive_answer_in_korean(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    docs = _write_docs(tmp_path / "문서")

    async def run() -> None:
        async with ragbridge.open(make_settings()) as rb:
            results = await rb.ingest("handbook", [docs])
            assert sorted(r.status for r in results) == ["added", "added"]
            again = await rb.ingest("handbook", [docs])
            assert [r.status for r in again] == ["unchanged", "unchanged"]

            hits = await rb.search("handbook", QUESTION)
            assert hits[0].chunk.metadata["name"] == "휴가.md"
            assert "15일" in hits[0].chunk.text
            keyword = await rb.search("handbook", "숙박비 정산", mode="keyword", top_k=1)
            assert [h.chunk.metadata["name"] for h in keyword] == ["출장.md"]

            answer = await rb.ask("handbook", QUESTION)  # no upstream: extractive, cited
            assert "15일" in answer.text
            assert answer.sources[0]["source"]["name"] == "휴가.md"
            assert answer.completion["model"] == "rag/handbook"

            (info,) = await rb.collections()
            assert (info.name, info.document_count) == ("handbook", 2)
            leave = next(d for d in await rb.documents("handbook") if d.source == "휴가.md")
            assert await rb.delete_document("handbook", leave.id)
            assert await rb.document("handbook", leave.id) is None
            assert await rb.delete_collection("handbook")
            assert await rb.collections() == []
            assert not await rb.delete_collection("handbook")

    asyncio.run(run())


def test_answer_through_the_upstream_carries_the_korean_passages(
    make_settings: Callable[..., Settings], upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    docs = _write_docs(tmp_path / "문서")
    upstream.script(Reply(tokens=["연차 휴가는 ", "15일입니다", " [1]."]))

    async def run() -> None:
        settings = make_settings(upstream_base_url=upstream.url)
        async with ragbridge.open(settings) as rb:
            await rb.ingest("handbook", [docs])
            history = [
                {"role": "user", "content": "회사 규정을 물어봐도 될까요?"},
                {"role": "assistant", "content": "네, 물어보세요."},
            ]
            answer = await rb.ask("handbook", QUESTION, history=history)
        assert answer.text == "연차 휴가는 15일입니다 [1]."
        assert answer.sources[0]["source"]["name"] == "휴가.md"
        sent = upstream.chat_requests[-1].body["messages"]
        assert any("연차 휴가 15일" in str(m["content"]) for m in sent)  # the passage went up
        assert QUESTION in str(sent[-1]["content"])
        assert sent[-3:-1] == history  # the earlier turns, as they were

    asyncio.run(run())


def test_keys_through_the_python_api(make_settings: Callable[..., Settings]) -> None:
    async def run() -> None:
        async with ragbridge.open(make_settings()) as rb:
            with pytest.raises(InvalidRequest, match="Key names are"):
                await rb.create_key("인사팀")  # names appear in logs and metrics: ASCII only
            new = await rb.create_key("hr-team", collections=["handbook"], rpm=30)
            assert new.secret and new.record.collections == ("handbook",)
            assert [(k.name, k.rpm, k.revoked) for k in await rb.keys()] == [("hr-team", 30, False)]
            assert await rb.revoke_key("hr-team")
            assert not await rb.revoke_key("hr-team")
            assert [k.revoked for k in await rb.keys()] == [True]

    asyncio.run(run())
