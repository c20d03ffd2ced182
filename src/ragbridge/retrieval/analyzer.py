"""Keyword analysis: text to index terms, the same way for chunks and queries. Korean through Kiwi
morphemes, Latin script stop-worded and Snowball-stemmed, Chinese and Japanese as character
bigrams, mixed text by runs (docs/retrieval.md)."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

import snowballstemmer

from ragbridge.text.scripts import CJK_CHARS, HANGUL, kiwi


class _Token(Protocol):
    form: str
    tag: str


class _Tokenizer(Protocol):
    def tokenize(self, text: str) -> Iterable[_Token]: ...


_WORD = re.compile(r"\S+")
_CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
_PIECE = re.compile(f"[{CJK_CHARS}]+|[^\\W_]+")
_LATIN = re.compile(r"[a-z0-9\u00c0-\u024f]+")

# Kiwi tags whose morphemes carry content: general/proper nouns, numerals, verb and adjective
# stems (with their irregular variants, e.g. "VA-I"), roots, and foreign/hanja/number tokens.
_KOREAN_CONTENT = ("NNG", "NNP", "NR", "VV", "VA", "XR")
_PASS_THROUGH = ("SL", "SH", "SN", "SW", "W_")
# Kiwi splits a compound noun one way in a passage and another in a question ("재택근무" vs
# "재택 근무"); long nouns are also indexed as syllable bigrams so both spellings meet, like
# the "mixed" decompounding of Lucene's Korean analyzer.
_COMPOUND_SYLLABLES = 4

KOREAN_STOPWORDS = frozenset(
    "하 되 있 없 않 같 이러 그러 저러 어떻 어떠 어떡 얼마 무엇 뭐 어디 언제 누구".split()  # noqa: SIM905
)
"""Light verbs and question words: frequent in questions, useless as evidence in passages."""

ENGLISH_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t d ll m re ve""".split()  # noqa: SIM905
)
"""Function words and question words (NLTK's English list, trimmed)."""

_stemmers = threading.local()


@functools.lru_cache(maxsize=65536)
def stem_english(word: str) -> str:
    """Snowball (Porter2) English stem of a lowercased word; memoised, one stemmer per thread."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    stem: str = stemmer.stemWord(word)
    return stem


def _cjk_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a run of ideographs, kana or Hangul syllables (one
    character stays a unigram)."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _word_terms(word: str) -> list[str]:
    """Terms for one space-free piece of non-Korean text."""
    if _CJK_RUN.fullmatch(word):
        return _cjk_bigrams(word)
    word = word.casefold()
    if _LATIN.fullmatch(word):
        if word in ENGLISH_STOPWORDS:
            return []
        return [word] if word.isdigit() else [stem_english(word)]
    return [word]


def _korean_spans(text: str) -> list[tuple[bool, str]]:
    """`text` cut into runs of whitespace-separated words with and without Hangul.

    Only the Korean runs go through the morphological analyser: English words around them
    make it guess worse ("database backups 백업" splits 백업 into 백 + 업), and skip its cost.
    """
    spans: list[tuple[bool, int, int]] = []
    for word in _WORD.finditer(text):
        korean = bool(HANGUL.search(word.group()))
        if spans and spans[-1][0] == korean:
            spans[-1] = (korean, spans[-1][1], word.end())
        else:
            spans.append((korean, word.start(), word.end()))
    return [(korean, text[start:end]) for korean, start, end in spans]


def analyze_plain(text: str) -> list[str]:
    """Terms for text without Korean: no morphological analyser needed."""
    terms: list[str] = []
    for piece in _PIECE.findall(text):
        terms.extend(_word_terms(piece))
    return terms


class Analyzer:
    """Turns text into keyword terms; builds its Korean morphological analyser on first use.

    Safe to share between threads: the analyser is built once under a lock, and Kiwi's analysis
    of a built model is reentrant.
    """

    def __init__(self, tokenizer_factory: Callable[[], _Tokenizer] = kiwi) -> None:
        self._factory = tokenizer_factory
        self._tokenizer: _Tokenizer | None = None
        self._lock = threading.Lock()

    def _korean(self) -> _Tokenizer:
        tokenizer = self._tokenizer
        if tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = self._factory()
                tokenizer = self._tokenizer
        return tokenizer

    def analyze(self, text: str) -> list[str]:
        """Index terms for `text`, in order of appearance (repeats kept, for term frequency)."""
        terms: list[str] = []
        for korean, span in _korean_spans(text):
            terms.extend(self._analyze_korean(span) if korean else analyze_plain(span))
        return terms

    def _analyze_korean(self, text: str) -> list[str]:
        terms: list[str] = []
        for token in self._korean().tokenize(text):
            tag = token.tag
            if tag.startswith(_KOREAN_CONTENT):
                if token.form not in KOREAN_STOPWORDS:
                    terms.append(token.form)
                if tag.startswith("NN") and len(token.form) >= _COMPOUND_SYLLABLES:
                    terms.extend(_cjk_bigrams(token.form))  # 김치찌개 also as 김치 치찌 찌개
            elif tag.startswith(_PASS_THROUGH):
                terms.extend(analyze_plain(token.form))
        return terms

    def keywords(self, text: str) -> str:
        """Space-joined terms, the form the store's keyword index takes (`NewChunk.keywords`)."""
        return " ".join(self.analyze(text))


@functools.cache
def default_analyzer() -> Analyzer:
    """The process-wide analyzer behind `analyze` (Kiwi is expensive to build, so build it once)."""
    return Analyzer()


def analyze(text: str) -> list[str]:
    """Index terms for `text`, in order; used for both chunks and queries."""
    return default_analyzer().analyze(text)
