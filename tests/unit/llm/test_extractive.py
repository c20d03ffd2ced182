import json

from ragbridge.llm.extractive import NOTHING_FOUND, best_excerpt, extractive_answer, relevant_hits
from ragbridge.llm.tasks import task_answer
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


def test_a_title_comes_from_the_first_sentence_and_an_empty_message_gives_an_empty_one() -> None:
    head = '### Task:\nGenerate a title.\nJSON format: { "title": "your title" }\n<chat_history>\n'
    asked = head + "USER: 한라산은 얼마나 높나요? 등산로도 알려 주세요.\nASSISTANT: 1,947 m입니다."
    assert json.loads(task_answer(asked)) == {"title": "한라산은 얼마나 높나요"}
    assert json.loads(task_answer(head + "USER: ")) == {"title": ""}


def test_wrapped_lines_are_joined_and_cut_sentences_left_out() -> None:
    text = (
        "the end of a sentence the splitter cut. To add a connection, open Admin Settings,\n"
        "then Connections, and paste the URL. Save it. A sentence cut off at the chunk's"
    )
    excerpt = best_excerpt(text, {"connect", "admin", "set"})
    assert (
        excerpt
        == "To add a connection, open Admin Settings, then Connections, and paste the URL. Save it."
    )
    korean = (
        "연차는 입사일 기준으로\n계산합니다. 남은 연차는 다음 해로\n이월됩니다. 신청은 인사팀에"
    )
    assert (
        best_excerpt(korean, {"연차"})
        == "연차는 입사일 기준으로 계산합니다. 남은 연차는 다음 해로 이월됩니다."
    )


def test_long_passages_quote_whole_sentences_only() -> None:
    sentence = "The VPN token rotates every thirty days for every employee in the company. "
    excerpt = best_excerpt(sentence * 20, {"vpn", "token"})
    assert excerpt.endswith("company.") and len(excerpt) <= 600


def test_off_topic_questions_find_nothing_relevant() -> None:
    hits = [hit("Employees get 25 vacation days per year.", "hr.md")]
    assert relevant_hits("What is the capital of France?", hits) == []
    assert relevant_hits("How many vacation days do employees get?", hits) == hits
    ko_hits = [hit("직원은 연 25일의 연차를 받습니다.", "인사.md")]
    assert relevant_hits("프랑스의 수도는 어디인가요?", ko_hits) == []
    assert relevant_hits("직원의 연차는 며칠인가요?", ko_hits) == ko_hits
    assert extractive_answer("프랑스의 수도는?", []) == NOTHING_FOUND["ko"]
