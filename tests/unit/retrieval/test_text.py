"""Keyword analysis: Korean morphemes, English stems and stopwords, other scripts, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ragbridge.retrieval.analyzer import Analyzer, analyze, analyze_plain, default_analyzer


@pytest.mark.parametrize("word", ["회사의", "회사는", "회사를", "회사에서", "회사"])
def test_korean_particles_are_stripped(word: str) -> None:
    assert analyze(word) == ["회사"]


def test_korean_keeps_content_morphemes_and_drops_endings() -> None:
    terms = analyze("재택근무를 신청하려면 팀장의 승인이 필요합니다.")
    assert {"재택근무", "신청", "팀장", "승인", "필요"} <= set(terms)
    assert not {"를", "의", "이", "하", "니다", "습니다", "."} & set(terms)


def test_korean_verb_forms_share_a_stem() -> None:
    assert "만들" in analyze("서버를 만들었다")
    assert "만들" in analyze("직접 만든 서버")


def test_korean_question_words_are_not_terms() -> None:
    assert analyze("휴가 정책은 어떻게 되나요?") == ["휴가", "정책"]


def test_english_is_stemmed_lowercased_and_stopworded() -> None:
    assert analyze("What are the effects of Vaccines on studies?") == ["effect", "vaccin", "studi"]
    assert analyze("running runs run") == ["run", "run", "run"]


def test_numbers_are_kept() -> None:
    assert analyze("HTTP 429 in 2024") == ["http", "429", "2024"]


def test_mixed_korean_and_english() -> None:
    terms = analyze("Python 3.11에서 asyncio를 사용한 Servers")
    assert terms == ["python", "3", "11", "asyncio", "사용", "server"]


def test_chinese_and_japanese_become_bigrams() -> None:
    assert analyze("東京都") == ["東京", "京都"]
    assert analyze_plain("中华人民共和国")[:2] == ["中华", "华人"]
    assert analyze("日") == ["日"]


def test_other_scripts_fall_back_to_words() -> None:
    assert analyze("Привет, МИР!") == ["привет", "мир"]
    assert analyze("Ελληνικά κείμενα") == ["ελληνικά", "κείμενα"]


def test_terms_are_safe_index_tokens() -> None:
    terms = analyze('snake_case "quoted" e-mail: a@b.com #태그 OR NOT')
    assert all(term.isalnum() for term in terms)


def test_empty_and_punctuation_only() -> None:
    assert analyze("") == []
    assert analyze(" ?!… ") == []


def test_keywords_joins_terms_for_the_store() -> None:
    assert Analyzer().keywords("회사의 Vaccines") == "회사 vaccin"


def test_korean_analyser_is_built_lazily_once_and_shared_across_threads() -> None:
    built: list[object] = []

    def factory() -> object:
        from kiwipiepy import Kiwi

        kiwi = Kiwi()
        built.append(kiwi)
        return kiwi

    analyzer = Analyzer(factory)  # type: ignore[arg-type]
    assert analyzer.analyze("English only") == ["english"]
    assert built == []
    texts = ["회사의 휴가", "팀장의 승인", "서버를 만들었다"] * 8
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(analyzer.analyze, texts))
    assert len(built) == 1
    assert results[:3] == [["회사", "휴가"], ["팀장", "승인"], ["서버", "만들"]]


def test_default_analyzer_is_cached() -> None:
    assert default_analyzer() is default_analyzer()


def test_long_korean_compounds_meet_their_spaced_spelling() -> None:
    compound = set(analyze("김치찌개를 끓였다"))
    assert {"김치찌개", "찌개"} <= compound
    assert "찌개" in analyze("찌개가 시큼하다")
    assert set(analyze("재택 근무")) <= set(analyze("재택근무를 신청"))


def test_english_words_next_to_korean_do_not_change_its_analysis() -> None:
    assert analyze("database backups 백업") == ["databas", "backup", "백업"]
    assert analyze("회사의 VPN 정책은") == ["회사", "vpn", "정책"]
