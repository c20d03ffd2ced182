import json

from ragbridge.llm.extractive import best_excerpt, extractive_answer, task_answer
from ragbridge.store.base import ChunkRecord, SearchHit
from tests.support.paths import OPENWEBUI_FIXTURES as FIXTURES


def hit(text: str, name: str) -> SearchHit:
    return SearchHit(ChunkRecord("c1", "d1", "kb", 0, text, {"name": name}), 0.8)


def test_answer_quotes_and_cites_in_question_language() -> None:
    hits = [hit("Employees get 25 vacation days per year.", "hr.md")]
    answer = extractive_answer("How many vacation days do I get?", hits)
    assert answer.startswith("Retrieved from your documents")
    assert "> Employees get 25 vacation days per year. [1]" in answer
    assert "— hr.md" in answer

    ko = extractive_answer(
        "연차는 며칠인가요?", [hit("직원은 연 25일의 연차를 받습니다.", "인사.md")]
    )
    assert ko.startswith("문서에서 찾은 내용입니다")
    assert "직원은 연 25일의 연차를 받습니다. [1]" in ko


def test_nothing_found_is_said_plainly() -> None:
    assert "nothing" in extractive_answer("What?", [])
    assert "찾지 못했습니다" in extractive_answer("무엇인가요?", [])


def test_best_excerpt_prefers_sentences_sharing_query_terms() -> None:
    text = "Cats sleep a lot. Dogs bark. Parrots talk. The VPN needs a token. Fish swim."
    excerpt = best_excerpt(text, {"vpn", "token"}, max_sentences=1)
    assert excerpt == "The VPN needs a token."


def test_task_answers_for_real_open_webui_prompts() -> None:
    def prompt(name: str) -> str:
        body = json.loads((FIXTURES / name).read_text())["body"]
        return str(body["messages"][-1]["content"])

    title = json.loads(task_answer(prompt("task_title.json")))
    assert title == {"title": "Hello from the browser harness"}
    assert json.loads(task_answer(prompt("task_tags.json"))) == {"tags": []}
    assert json.loads(task_answer(prompt("task_follow_ups.json"))) == {"follow_ups": []}
    assert task_answer("### Task: something without a format") == "{}"
