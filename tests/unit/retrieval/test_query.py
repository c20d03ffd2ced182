from ragbridge.retrieval.query import message_text, refers_back, standalone_query


def test_standalone_question_is_used_as_is() -> None:
    messages = [
        {"role": "user", "content": "What is the refund policy for annual plans?"},
        {"role": "assistant", "content": "Refunds within 30 days."},
        {"role": "user", "content": "Which regions does the Frankfurt data center serve?"},
    ]
    assert standalone_query(messages) == "Which regions does the Frankfurt data center serve?"


def test_follow_up_that_refers_back_is_joined_with_previous_question() -> None:
    messages = [
        {"role": "user", "content": "What is the refund policy for annual plans?"},
        {"role": "assistant", "content": "Refunds within 30 days."},
        {"role": "user", "content": "Explain that in more detail"},
    ]
    assert standalone_query(messages) == (
        "What is the refund policy for annual plans? Explain that in more detail"
    )


def test_korean_follow_up() -> None:
    assert refers_back("그것에 대해 더 자세히 알려줘")
    assert refers_back("좀 더 설명해 주세요")
    assert not refers_back("신입 사원의 연차 휴가는 입사 첫해에 며칠 주어지나요")
    assert not refers_back("회사 사람이 많이 사용하는 메신저 프로그램은 무엇인가요")


def test_content_parts_are_read() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}
    assert message_text(message) == "hi"
    assert standalone_query([]) == ""
