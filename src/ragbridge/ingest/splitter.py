"""Sections to chunks of about the same amount of text in every script, cut at the coarsest
boundary that fits (paragraph, sentence, line, word) and never longer than the model reads in
its own tokens (it would truncate silently). See docs/ingest.md."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from ragbridge.ingest.documents import LoadedDocument
from ragbridge.text.scripts import CJK_CHARS, HANGUL, HANGUL_CHARS, kiwi

TokenCounter = Callable[[str], int]
Span = tuple[int, int]

SPLITTER_VERSION = 2
"""Bump when chunk boundaries change, so re-ingest re-embeds documents split the old way."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+"  # Western and Korean: 다. 요? 죠! then space
    r"|(?<=[。！？])\s*"  # CJK full-width stops need no space
)
_LINE_BREAK = re.compile(r"\s*\n\s*")
_WORD = re.compile(r"\S+")
_NON_BLANK = re.compile(r"\S(?:.*\S)?", re.DOTALL)
_CHARS_SURELY_OVER = 32
"""A span with this many characters per allowed token is cut up without being counted whole
(counting a long text is the costly part; its pieces are counted anyway)."""


_WIDE = re.compile(f"[{HANGUL_CHARS}{CJK_CHARS}]")
_WIDE_WEIGHT = 2.5
"""A Hangul syllable or CJK character holds about as much text as 2.5 Latin characters
(measured on the English and Korean versions of bench/data's passages)."""
_CHARS_PER_UNIT = 4.0


def text_units(text: str) -> int:
    """Size of `text` in units of about one English wordpiece, the same for every script (a
    tokenizer that breaks Hangul into jamo would cut Korean four times shorter than English)."""
    wide = len(_WIDE.findall(text))
    return max(1, round((len(text) - wide + _WIDE_WEIGHT * wide) / _CHARS_PER_UNIT)) if text else 0


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, small enough to embed whole, with where it came from."""

    text: str
    position: int
    """Index of the chunk within its document, from 0."""
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int


class TextSplitter:
    """Splits text into chunks of at most `chunk_size` units (`measure`, by default
    `text_units`), never more than `max_tokens` of the model's tokens (`count_tokens`)."""

    def __init__(
        self,
        count_tokens: TokenCounter,
        *,
        chunk_size: int,
        chunk_overlap: int,
        max_tokens: int,
        measure: TokenCounter | None = text_units,
    ) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.model_tokens = count_tokens
        self.count_tokens = measure or count_tokens
        """What pieces are sized by (`measure`, or the model's tokens when it is None)."""
        self.max_tokens = max_tokens
        self.chunk_size = max(1, min(chunk_size, max_tokens))
        self.chunk_overlap = max(0, min(chunk_overlap, self.chunk_size // 2))

    @property
    def config(self) -> str:
        """Identifies how chunks are cut; a document split another way must be re-split."""
        unit = "t" if self.count_tokens is self.model_tokens else "u"
        return f"v{SPLITTER_VERSION}{unit}:{self.chunk_size}:{self.chunk_overlap}:{self.max_tokens}"

    def split_document(self, document: LoadedDocument) -> list[Chunk]:
        """Chunks of every section, numbered through the document; a section that is nothing
        but its heading goes in front of the next section's text."""
        chunks: list[Chunk] = []
        carried = ""
        sections = document.sections
        for index, section in enumerate(sections):
            text = f"{carried}\n\n{section.text}" if carried else section.text
            carried = ""
            if (
                index + 1 < len(sections)
                and section.headings
                and text.strip() == "\n\n".join(_bare_headings(text, section.headings))
                and sections[index + 1].page == section.page
            ):
                carried = text.strip()
                continue
            for chunk_text, _ in self.split_text(text):
                chunks.append(Chunk(chunk_text, len(chunks), section.page, section.headings))
        return chunks

    def split_text(self, text: str) -> list[tuple[str, int]]:
        """`(chunk text, token count)` pairs covering all of `text` in order."""
        return [(text[start:end], tokens) for start, end, tokens in self.chunk_spans(text)]

    def chunk_spans(self, text: str) -> list[tuple[int, int, int]]:
        """`(start, end, token count)` of each chunk of `text`; consecutive chunks overlap or
        are separated by whitespace only."""
        bounds = _trim(text, 0, len(text))
        if bounds is None:
            return []
        return list(self._spans(text, *bounds, self.chunk_size, overlap=True))

    def _spans(
        self, text: str, start: int, end: int, limit: int, *, overlap: bool
    ) -> Iterator[tuple[int, int, int]]:
        """Chunk spans with their exact token counts, each at most `max_tokens`."""
        pieces = self._pieces(text, start, end, limit, level=0, tokens=None)
        last_start, last_end = -1, start
        for packed_start, packed_end in self._pack(text, pieces, limit, overlap):
            bounds = (packed_start, packed_end)
            if packed_start <= last_start:  # the chunk before was cut finer: no overlap
                bounds = _trim(text, last_end, packed_end)  # type: ignore[assignment]
                if bounds is None:
                    continue
            chunk_start, chunk_end = bounds
            actual = self.model_tokens(text[chunk_start:chunk_end])
            if actual <= self.max_tokens or chunk_end - chunk_start == 1:
                yield chunk_start, chunk_end, actual  # (one character cannot be cut further)
                last_start, last_end = chunk_start, chunk_end
                continue
            # Over the model's ceiling (text denser in tokens than in units): cut finer.
            smaller = max(1, min(limit - 1, limit * self.max_tokens // actual))
            for span in self._spans(text, chunk_start, chunk_end, smaller, overlap=False):
                yield span
                last_start, last_end = span[0], span[1]

    def _pieces(
        self, text: str, start: int, end: int, limit: int, *, level: int, tokens: int | None
    ) -> Iterator[_Piece]:
        """Pieces of at most `limit` tokens, cut at the coarsest boundary that gets there."""
        if tokens is None and end - start <= _CHARS_SURELY_OVER * limit:
            tokens = self.count_tokens(text[start:end])  # (far longer ones cannot fit anyway)
        if tokens is not None and tokens <= limit:
            yield _Piece(start, end, tokens)
            return
        if level == len(_LEVELS):
            total = tokens if tokens is not None else self.count_tokens(text[start:end])
            yield from self._hard_split(text, start, end, limit, total)
            return
        spans = _LEVELS[level](text, start, end)
        if len(spans) == 1:  # no boundary of this kind inside: try the next finer kind
            span_start, span_end = spans[0]
            known = tokens if (span_start, span_end) == (start, end) else None
            yield from self._pieces(
                text, span_start, span_end, limit, level=level + 1, tokens=known
            )
            return
        for span_start, span_end in spans:
            yield from self._pieces(text, span_start, span_end, limit, level=level + 1, tokens=None)

    def _hard_split(
        self, text: str, start: int, end: int, limit: int, tokens: int
    ) -> Iterator[_Piece]:
        """Cut a run without boundaries into the longest prefixes that fit (binary search within
        a window of about twice the characters `limit` tokens take on average)."""
        window = 2 * ((end - start) * limit // max(tokens, 1)) + 8
        while start < end:
            low, high = start + 1, min(end, start + window)  # text[start:low] fits
            while low < high:
                middle = (low + high + 1) // 2
                if self.count_tokens(text[start:middle]) <= limit:
                    low = middle
                else:
                    high = middle - 1
            yield _Piece(start, low, self.count_tokens(text[start:low]))
            start = low

    def _pack(
        self, text: str, pieces: Iterator[_Piece], limit: int, overlap: bool
    ) -> Iterator[Span]:
        """Greedily join consecutive pieces up to `limit` tokens; start each next chunk with the
        previous chunk's last `chunk_overlap` tokens (whole pieces, else trailing words)."""
        current: list[_Piece] = []
        total = 0
        for piece in pieces:
            if current and total + piece.tokens > limit:
                yield current[0].start, current[-1].end
                budget = min(self.chunk_overlap, limit - piece.tokens) if overlap else 0
                current = self._tail(text, current, budget)
                total = sum(p.tokens for p in current)
            current.append(piece)
            total += piece.tokens
        if current:
            yield current[0].start, current[-1].end

    def _tail(self, text: str, pieces: list[_Piece], budget: int) -> list[_Piece]:
        """The last pieces (and words of the piece before them) worth at most `budget` tokens."""
        kept: list[_Piece] = []
        used = 0
        for piece in reversed(pieces):
            if budget <= used:
                break
            if used + piece.tokens <= budget:
                kept.insert(0, piece)
                used += piece.tokens
                continue
            words_start, words_tokens = piece.end, 0
            for word in reversed(list(_WORD.finditer(text, piece.start, piece.end))):
                tokens = self.count_tokens(word.group())
                if used + words_tokens + tokens > budget:
                    break
                words_start, words_tokens = word.start(), words_tokens + tokens
            if words_tokens:
                kept.insert(0, _Piece(words_start, piece.end, words_tokens))
            break
        return kept


def _sentences(text: str, start: int, end: int) -> list[Span]:
    """Sentences by punctuation; in Korean without any, Kiwi finds ends like `…했다 그리고 …`."""
    spans = _between(_SENTENCE_BREAK, text, start, end)
    if len(spans) == 1 and HANGUL.search(text, start, end):
        sentences = kiwi().split_into_sents(text[start:end])
        return [(start + s.start, start + s.end) for s in sentences if s.end > s.start] or spans
    return spans


def _words(text: str, start: int, end: int) -> list[Span]:
    return [match.span() for match in _WORD.finditer(text, start, end)]


def _bare_headings(text: str, headings: tuple[str, ...]) -> list[str]:
    """The trailing headings `text` consists of, if it is nothing but headings (else [])."""
    parts = [part.strip() for part in _PARAGRAPH_BREAK.split(text.strip())]
    return parts if parts and all(part in headings for part in parts) else []


def _between(separator: re.Pattern[str], text: str, start: int, end: int) -> list[Span]:
    """Non-blank spans of `text[start:end]` between matches of `separator`, trimmed."""
    spans = []
    position = start
    for match in separator.finditer(text, start, end):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, end))
    return [trimmed for span in spans if (trimmed := _trim(text, *span))]


def _trim(text: str, start: int, end: int) -> Span | None:
    """The span without surrounding whitespace, or None if it is all whitespace."""
    match = _NON_BLANK.search(text, start, end)
    return match.span() if match else None


_LEVELS: tuple[Callable[[str, int, int], list[Span]], ...] = (
    partial(_between, _PARAGRAPH_BREAK),
    _sentences,
    partial(_between, _LINE_BREAK),
    _words,
)
"""Boundaries to cut at, coarsest first."""
