"""The splitter with the model's own tokenizer: no chunk ever longer than the model reads, no text
lost, coarse boundaries preferred, overlap in tokens, Korean sentences."""

from __future__ import annotations

import itertools
import re
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragbridge.embeddings.base import Embedder
from ragbridge.ingest.documents import LoadedDocument, Section
from ragbridge.ingest.splitter import TextSplitter
from tests.support import documents as generated


def splitter(
    embedder: Embedder, size: int, overlap: int = 0, limit: int | None = None
) -> TextSplitter:
    return TextSplitter(
        embedder.count_tokens,
        chunk_size=size,
        chunk_overlap=overlap,
        max_tokens=limit if limit is not None else embedder.max_tokens,
        measure=None,  # sized in the model's tokens: the tests below count them exactly
    )


def assert_covers(text: str, spans: list[tuple[int, int, int]]) -> None:
    """Spans run in order, and whatever lies between two of them is whitespace."""
    assert spans, "non-blank text gives at least one chunk"
    assert text[: spans[0][0]].strip() == ""
    assert text[spans[-1][1] :].strip() == ""
    for (start, end, _), (next_start, next_end, _) in itertools.pairwise(spans):
        assert start < next_start and end < next_end
        assert text[end:next_start].strip() == ""  # empty when they overlap


WORDS = st.sampled_from(
    [
        *("the", "valve", "pump", "must", "be", "inspected", "every", "90", "days"),
        *("unbelievably", "internationalisation", "Tromsø", "café", "naïve", "e.g.", "U.S.A."),
        *("3.14159", "##hash", "@user", "https://example.com/a/b?c=d&e=f"),
        *("한라산은", "제주도에", "있으며", "높이는", "1,947미터로", "가장", "높은", "산입니다"),
    ]
)
PUNCTUATION = st.sampled_from(
    [" ", " ", " ", ". ", "! ", "? ", "다. ", "요? ", "\n", "\n\n", "。", ","]
)
LONG_RUNS = st.sampled_from(["a,b" * 300, "가,나" * 200, "x" * 500, "(1)" * 150])


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 120))):
        parts.append(draw(WORDS) if draw(st.integers(0, 40)) else draw(LONG_RUNS))
        parts.append(draw(PUNCTUATION))
    return "".join(parts)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts(), size=st.integers(4, 80), overlap=st.integers(0, 30), slack=st.integers(0, 20))
def test_no_chunk_is_longer_than_the_model_reads_and_no_text_is_lost(
    embedder: Embedder, text: str, size: int, overlap: int, slack: int
) -> None:
    limit = size + slack
    cutter = splitter(embedder, size, overlap, limit=limit)
    spans = cutter.chunk_spans(text)
    assert_covers(text, spans)
    for start, end, tokens in spans:
        assert tokens == embedder.count_tokens(text[start:end])
        assert tokens <= limit


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts(), size=st.integers(8, 60), overlap=st.integers(1, 20))
def test_overlap_is_at_most_chunk_overlap_tokens(
    embedder: Embedder, text: str, size: int, overlap: int
) -> None:
    cutter = splitter(embedder, size, overlap)
    spans = cutter.chunk_spans(text)
    for (_, end, _), (next_start, _, _) in itertools.pairwise(spans):
        if next_start < end:
            assert embedder.count_tokens(text[next_start:end]) <= cutter.chunk_overlap


def test_the_default_settings_fill_chunks_up_to_the_model_limit(embedder: Embedder) -> None:
    text = "\n\n".join(generated.english_paragraphs() * 30)
    cutter = splitter(embedder, 256, 32)
    assert cutter.chunk_size == embedder.max_tokens == 254  # 256 less [CLS] and [SEP]
    chunks = cutter.split_text(text)
    assert max(tokens for _, tokens in chunks) <= 254
    assert sum(tokens for _, tokens in chunks[:-1]) / (len(chunks) - 1) > 200


def test_paragraphs_that_fit_are_never_cut(embedder: Embedder) -> None:
    paragraphs = generated.english_paragraphs()
    longest = max(embedder.count_tokens(p) for p in paragraphs)
    chunks = splitter(embedder, longest + 5).split_text("\n\n".join(paragraphs))
    for chunk, _ in chunks:
        assert all(part in paragraphs for part in chunk.split("\n\n"))
    assert sum(chunk.count("\n\n") + 1 for chunk, _ in chunks) == len(paragraphs)


def test_long_paragraphs_are_cut_at_sentence_ends(embedder: Embedder) -> None:
    paragraph = " ".join(generated.english_paragraphs())
    chunks = splitter(embedder, 40).split_text(paragraph)
    assert len(chunks) > 3
    assert all(chunk.endswith(".") for chunk, _ in chunks)


def test_korean_is_cut_at_korean_sentence_ends(embedder: Embedder) -> None:
    text = " ".join(generated.korean_paragraphs())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    longest = max(embedder.count_tokens(sentence) for sentence in sentences)
    chunks = splitter(embedder, longest + 2).split_text(text)
    assert len(chunks) > 3
    assert all(re.search(r"(니다|어요|해요|세요)[.!?]$", chunk) for chunk, _ in chunks), chunks


def test_korean_without_punctuation_is_cut_between_sentences_by_kiwi(embedder: Embedder) -> None:
    sentences = ["나는 학교에 갔다 그리고 밥을 먹었다", "바다 위에 배가 떠 있었다"]
    size = max(embedder.count_tokens(sentence) for sentence in sentences) + 1
    assert embedder.count_tokens(" ".join(sentences)) > size
    chunks = splitter(embedder, size).split_text(" ".join(sentences))
    assert [chunk for chunk, _ in chunks] == sentences


def test_a_run_without_any_boundary_is_cut_by_tokens(embedder: Embedder) -> None:
    run = "-".join(["segment"] * 400)
    chunks = splitter(embedder, 50).split_text(run)
    assert "".join(chunk for chunk, _ in chunks) == run
    assert all(tokens <= 50 for _, tokens in chunks)


def test_overlap_carries_the_end_of_the_previous_chunk(embedder: Embedder) -> None:
    text = " ".join(generated.english_paragraphs())
    chunks = splitter(embedder, 40, overlap=10).split_text(text)
    for (previous, _), (chunk, _) in itertools.pairwise(chunks):
        carried = next(
            (chunk[:n] for n in range(len(chunk), 0, -1) if previous.endswith(chunk[:n])), ""
        )
        assert 0 < embedder.count_tokens(carried) <= 10


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_blank_text_gives_no_chunks(embedder: Embedder, text: str) -> None:
    assert splitter(embedder, 32).split_text(text) == []


def test_settings_are_clamped_to_what_can_work(embedder: Embedder) -> None:
    cutter = splitter(embedder, 10_000, overlap=10_000)
    assert cutter.chunk_size == embedder.max_tokens
    assert cutter.chunk_overlap == embedder.max_tokens // 2
    assert cutter.config == f"v2t:{embedder.max_tokens}:{embedder.max_tokens // 2}:254"


def test_document_chunks_are_numbered_and_keep_page_and_headings(embedder: Embedder) -> None:
    document = LoadedDocument(
        source="guide.md",
        title="Guide",
        sections=(
            Section(" ".join(generated.english_paragraphs()), page=0),
            Section("Setup\n\nPlug it in.", headings=("Guide", "Setup")),
        ),
        content_hash="x",
        format="markdown",
    )
    chunks = splitter(embedder, 40).split_document(document)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    assert {chunk.page for chunk in chunks[:-1]} == {0}
    assert chunks[-1].text == "Setup\n\nPlug it in."
    assert chunks[-1].headings == ("Guide", "Setup")
    assert chunks[-1].page is None


def test_by_default_korean_chunks_hold_as_much_text_as_english_ones(embedder: Embedder) -> None:
    """Sized in text units, MiniLM's jamo tokens no longer cut Korean four times shorter; its
    token limit stays the ceiling."""
    korean = "\n\n".join(generated.korean_paragraphs() * 20)
    english = "\n\n".join(generated.english_paragraphs() * 20)
    by_units = TextSplitter(
        embedder.count_tokens, chunk_size=120, chunk_overlap=0, max_tokens=embedder.max_tokens
    )
    by_tokens = splitter(embedder, 120)
    for text in (korean, english):
        assert all(tokens <= embedder.max_tokens for _, tokens in by_units.split_text(text))
    korean_chars = statistics.fmean(len(c) for c, _ in by_units.split_text(korean)[:-1])
    english_chars = statistics.fmean(len(c) for c, _ in by_units.split_text(english)[:-1])
    token_chars = statistics.fmean(len(c) for c, _ in by_tokens.split_text(korean)[:-1])
    assert korean_chars > 1.5 * token_chars
    # Below a model's ceiling, a unit is ~4 Latin characters or ~1.6 Hangul syllables.
    roomy = TextSplitter(embedder.count_tokens, chunk_size=120, chunk_overlap=0, max_tokens=4096)
    korean_chars = statistics.fmean(len(c) for c, _ in roomy.split_text(korean)[:-1])
    english_chars = statistics.fmean(len(c) for c, _ in roomy.split_text(english)[:-1])
    assert 0.3 < korean_chars / english_chars < 0.6  # a Hangul syllable holds ~2.5 letters
