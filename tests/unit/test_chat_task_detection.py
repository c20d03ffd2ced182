"""Open WebUI's own background requests (title, tags, follow-ups) are recognised as tasks."""

import json

import pytest

from ragbridge.llm.tasks import is_task_request
from ragbridge.retrieval.query import message_text
from tests.support.paths import OPENWEBUI_FIXTURES as FIXTURES


def user(content: object) -> dict[str, object]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    "messages",
    [
        [user("### Task:\nGenerate a concise title.")],
        [user("  \n### Task:\nGenerate 1-3 broad tags.")],
        [{"role": "system", "content": "Be brief."}, user("### Task:\nSuggest follow-ups.")],
        [user([{"type": "text", "text": "### Task:\n"}, {"type": "text", "text": "title"}])],
    ],
)
def test_task_requests_are_recognised(messages: list[dict[str, object]]) -> None:
    assert is_task_request(messages)


@pytest.mark.parametrize(
    "messages",
    [
        [user("What is the refund policy?")],
        [user("Explain this:\n### Task: is a heading Open WebUI uses")],
        [user("### Task: one"), {"role": "assistant", "content": "ok"}, user("### Task: two")],
        [{"role": "assistant", "content": "hi"}, user("### Task:\nGenerate a title.")],
        [user([{"type": "image_url", "image_url": {"url": "data:..."}}])],
        [user(None)],
        [],
    ],
)
def test_ordinary_chats_are_not_tasks(messages: list[dict[str, object]]) -> None:
    assert not is_task_request(messages)


def test_korean_chat_is_not_a_task() -> None:
    assert not is_task_request([user("환불 정책이 뭐예요? ### Task:")])


def test_message_text_joins_text_parts_only() -> None:
    parts = [
        {"type": "text", "text": "안녕 "},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "world"},
    ]
    assert message_text(user(parts)) == "안녕 world"
    assert message_text({"role": "assistant", "content": None}) == ""


def test_real_open_webui_traffic_is_classified() -> None:
    verdicts = {}
    for path in sorted(FIXTURES.glob("*.json")):
        verdicts[path.stem] = is_task_request(json.loads(path.read_text())["body"]["messages"])
    assert {name for name, is_task in verdicts.items() if is_task} == {
        "task_title",
        "task_tags",
        "task_follow_ups",
        # Open WebUI's title request, captured with forwarded user headers
        "browser_chat_forwarded_user_headers",
    }
