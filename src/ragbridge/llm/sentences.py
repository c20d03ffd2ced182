"""Whole sentences out of a stored chunk: wrapped lines joined (a PDF page or a Markdown
paragraph wraps mid-sentence), list items, headings and table rows kept as units, and each
flagged `complete` unless the splitter cut it off at the chunk's edge."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING_OR_ROW = re.compile(r"\s*(?:#{1,6}\s|\|)")
_ITEM = re.compile(r"\s*(?:[-*+•·▪]\s|\d{1,3}[.)]\s|>\s)")
_END = r"[.!?。！？…]"
_CLOSE = r"[\"'”’)\]]"
_SPLIT = re.compile(rf"(?:(?<={_END})|(?<={_END}{_CLOSE}))\s+(?=\S)")
# Korean sentences often end in 다/요 (습니다, 해요) without a full stop.
_ENDS = re.compile(rf"(?:{_END}|[:;]|(?<=[가-힣])[다요죠]){_CLOSE}*$")
# "e.g. x", "Dr. Kim", "J. Smith": a split there would cut a sentence in two.
_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|Dr|Mr|Mrs|Ms|Prof|St|No|Fig|approx)|(?<!\w)[A-Z])\.$"
)


@dataclass(frozen=True)
class Sentence:
    """One unit of text and whether it reads as a whole (not cut off at the chunk's edge)."""

    text: str
    complete: bool


def sentences(text: str) -> list[Sentence]:
    """The chunk's sentences in order, with wrapped lines joined."""
    units: list[tuple[str, str]] = []  # (text, kind): "text", "item" or "line" (heading, row)
    for block in _BLANK_LINE.split(text.strip()):
        open_unit = False
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            kind = "item" if _ITEM.match(line) else "text"
            kind = "line" if _HEADING_OR_ROW.match(line) else kind
            if open_unit and kind == "text" and _continues(units[-1], line):
                units[-1] = (f"{units[-1][0]} {stripped}", units[-1][1])
            else:
                units.append((stripped, kind))
            open_unit = True
    pieces = [(piece, kind) for unit, kind in units for piece in _split(unit, kind)]
    result: list[Sentence] = []
    for index, (piece, kind) in enumerate(pieces):
        starts_cut = index == 0 and piece[:1].islower()
        ends_cut = index == len(pieces) - 1 and kind == "text" and not _ENDS.search(piece)
        result.append(Sentence(piece, complete=not (starts_cut or ends_cut)))
    return result


def _continues(previous: tuple[str, str], line: str) -> bool:
    """Whether `line` wraps the previous unit rather than starting a new one."""
    text, kind = previous
    if kind == "line":
        return False
    if kind == "item":  # a wrapped list item is indented or carries on mid-sentence
        return line[:1].isspace() or not _ENDS.search(text)
    return True


def _split(unit: str, kind: str) -> list[str]:
    """A paragraph's sentences; no split after an abbreviation. Headings and rows stay whole."""
    if kind == "line":
        return [unit]
    pieces: list[str] = []
    for piece in _SPLIT.split(unit):
        if pieces and _ABBREVIATION.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    return [piece.strip() for piece in pieces if piece.strip()]
