from ragbridge.prompts import (
    citation,
    detect_language,
    fit_to_budget,
    format_context,
    source_event,
    with_context,
)
from ragbridge.store.base import ChunkRecord, SearchHit


def hit(chunk_id: str, text: str, score: float = 0.5, **meta: object) -> SearchHit:
    chunk = ChunkRecord(chunk_id, "doc-1", "handbook", 0, text, dict(meta))
    return SearchHit(chunk, score)


def test_detect_language() -> None:
    assert detect_language("휴가 정책은 어떻게 되나요?") == "ko"
    assert detect_language("What is the vacation policy?") == "en"
    assert detect_language("VPN 접속 방법을 알려줘") == "ko"
    assert detect_language("1234") == "en"


def test_context_numbers_passages_with_source_and_one_based_page() -> None:
    text = format_context(
        [hit("a", "Alpha.", name="a.pdf", page=0), hit("b", "Beta.", name="b.md")]
    )
    assert text == "[1] (a.pdf, page 1)\nAlpha.\n\n[2] (b.md)\nBeta."


def test_with_context_keeps_whole_history_after_rag_system_message() -> None:
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    out = with_context(history, [hit("a", "Alpha fact.", name="a.md")], "en")
    assert out[1:] == history
    assert out[0]["role"] == "system"
    assert "[1] (a.md)\nAlpha fact." in out[0]["content"]


def test_no_hits_tells_the_model_to_say_the_documents_do_not_cover_it() -> None:
    out = with_context([{"role": "user", "content": "질문"}], [], "ko")
    assert "찾지 못했습니다" in out[0]["content"]


def test_custom_template_gets_context() -> None:
    out = with_context([], [hit("a", "Alpha.", name="a.md")], "en", "CTX:{context}")
    assert out[0]["content"] == "CTX:[1] (a.md)\nAlpha."


def test_source_event_matches_open_webui_shape() -> None:
    event = source_event(hit("chunk-7", "passage", 0.91, name="manual.pdf", page=2))
    assert event == {
        "event": {
            "type": "source",
            "data": {
                "source": {"id": "chunk-7", "name": "manual.pdf", "url": ""},
                "document": ["passage"],
                "metadata": [{"source": "chunk-7", "name": "manual.pdf", "page": 2}],
                "distances": [0.91],
            },
        }
    }
    assert "type" not in citation(hit("x", "t"))


def test_fit_to_budget_keeps_best_first_prefix() -> None:
    hits = [hit(str(i), "word " * 50) for i in range(5)]
    kept = fit_to_budget(hits, 140, lambda s: len(s.split()))
    assert [h.chunk.id for h in kept] == ["0", "1"]
