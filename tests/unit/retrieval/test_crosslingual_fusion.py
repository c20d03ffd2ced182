"""Fusion when the keyword side cannot read a passage (another script than the query)."""

from __future__ import annotations

import pytest

from ragbridge.ingest.splitter import text_units
from ragbridge.retrieval.fusion import reciprocal_rank_fusion, relative_score_fusion
from ragbridge.text.scripts import cross_script


def test_cross_script_compares_the_query_and_the_passage() -> None:
    assert cross_script("연차는 며칠인가요?", "Employees get 15 days of annual leave.")
    assert cross_script("How many days of leave?", "직원은 연차휴가 15일을 받습니다.")
    assert not cross_script("연차는 며칠인가요?", "직원은 연차휴가 15일을 받습니다.")
    assert not cross_script("How many days?", "Employees get 15 days.")


def test_a_passage_keyword_cannot_read_is_fused_on_its_dense_score() -> None:
    # Korean question: dense ranks the English answer first; keyword found only a Korean
    # passage sharing a word with the question.
    dense = ([("en-answer", 0.80), ("ko-other", 0.60)], 1.0)
    keyword = ([("ko-other", 7.0)], 1.0)
    plain = relative_score_fusion([dense, keyword], depth=50)
    assert plain[0][0] == "ko-other"  # what the keyword side did before
    fused = relative_score_fusion([dense, keyword], depth=50, blind=[set(), {"en-answer"}])
    assert fused[0] == ("en-answer", pytest.approx(1.0))
    rrf = reciprocal_rank_fusion([dense, keyword], blind=[set(), {"en-answer"}])
    assert rrf[0] == ("en-answer", pytest.approx(1.0))


def test_without_blind_items_the_fusions_are_unchanged() -> None:
    dense = ([("a", 0.9), ("b", 0.5)], 1.0)
    keyword = ([("b", 3.0), ("c", 1.0)], 1.0)
    assert relative_score_fusion([dense, keyword], 50) == relative_score_fusion(
        [dense, keyword], 50, blind=[set(), set()]
    )
    fused = dict(reciprocal_rank_fusion([dense, keyword], k=60))
    assert fused["b"] == pytest.approx((1 / 62 + 1 / 61) / (2 / 61))


def test_text_units_weigh_korean_and_english_alike() -> None:
    english = "Employees who have completed one year of service receive 15 days of paid leave."
    korean = "입사 후 1년이 지난 직원에게는 연 15일의 유급 연차휴가가 주어집니다."
    assert 0.7 < text_units(korean) / text_units(english) < 1.3
    assert text_units("") == 0
