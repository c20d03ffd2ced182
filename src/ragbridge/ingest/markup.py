"""Markdown and HTML readers: sections split at headings, each with its heading path."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bs4 import BeautifulSoup, Tag
from bs4.element import Comment, NavigableString
from markdown_it import MarkdownIt

from ragbridge.ingest.documents import LoadedDocument, Section, decode_text, whole_file
from ragbridge.ingest.limits import IngestLimits

_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOISE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "button",
    "svg",
    "iframe",
    "canvas",
)
_NOISE_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
_PARAGRAPH_TAGS = (
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dl",
    "figure",
    "hr",
)
_LINE_TAGS = ("li", "br", "dt", "dd", "figcaption")
_HEADING_MARK = "\x1e"
_HEADING_END = "\x1f"
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class HeadingPath:
    """The stack of enclosing headings as a document is read top to bottom."""

    def __init__(self) -> None:
        self._levels: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> tuple[str, ...]:
        """Record a heading of `level` (1 = outermost); returns the path including it."""
        while self._levels and self._levels[-1][0] >= level:
            self._levels.pop()
        self._levels.append((level, title))
        return tuple(title for _, title in self._levels)


def tidy(text: str) -> str:
    """Collapse runs of spaces, strip lines, keep at most one blank line between paragraphs."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def read_markdown(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """Markdown: one section per heading (ATX or setext, code fences respected)."""
    text = decode_text(data, source)
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").parse(text)
    marks = [
        (token.map[0], token.map[1], int(token.tag[1]), " ".join(tokens[i + 1].content.split()))
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.level == 0 and token.map
    ]
    first_line = marks[0][0] if marks else len(lines)
    sections = [Section("\n".join(lines[:first_line]).strip())]
    path = HeadingPath()
    for index, (_, body_start, level, heading) in enumerate(marks):
        body_end = marks[index + 1][0] if index + 1 < len(marks) else len(lines)
        body = "\n".join(lines[body_start:body_end]).strip()
        headings = path.enter(level, heading)
        sections.append(Section(f"{heading}\n\n{body}".strip(), headings=headings))
    title = next((heading for _, _, level, heading in marks if level == 1), "")
    return whole_file(source, data, "markdown", sections, title)


def read_html(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """HTML: the main text without scripts, styles, navigation, headers, footers or asides."""
    soup = BeautifulSoup(data, "html.parser")
    title_tag = soup.find("title")
    page_title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for node in soup.find_all(string=lambda s: isinstance(s, Comment)):
        node.extract()
    for tag in soup.find_all(_noise):
        tag.decompose()
    root = _main_element(soup)
    for heading in root.find_all(_HEADING_TAGS):
        text = heading.get_text(" ", strip=True).replace(_HEADING_MARK, "")
        heading.replace_with(
            NavigableString(f"\n\n{_HEADING_MARK}{heading.name[1]}{text}{_HEADING_END}\n\n")
        )
    for table in root.find_all("table"):
        table.replace_with(NavigableString(f"\n\n{_table_text(table)}\n\n"))
    for tag in root.find_all(_PARAGRAPH_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    for tag in root.find_all(_LINE_TAGS):
        tag.insert_after("\n")
    sections = list(_sections_from_marked(root.get_text()))
    first_heading = next((s.headings[0] for s in sections if s.headings), "")
    return whole_file(source, data, "html", sections, page_title or first_heading)


def _table_text(table: Tag) -> str:
    """A table as lines of cells joined by ` | `."""
    rows = (
        " | ".join(cell.get_text(" ", strip=True) for cell in row.find_all(("td", "th")))
        for row in table.find_all("tr")
    )
    return "\n".join(row for row in rows if row)


def _noise(tag: Tag) -> bool:
    """Elements that are navigation or decoration, not content."""
    if tag.name in _NOISE_TAGS:
        return True
    role = tag.get("role")
    return isinstance(role, str) and role.lower() in _NOISE_ROLES


def _main_element(soup: BeautifulSoup) -> Tag:
    """`<main>`, the one `<article>`, `[role=main]`, else `<body>`, else the whole document."""
    for candidate in (soup.find("main"), soup.find(role="main")):
        if isinstance(candidate, Tag):
            return candidate
    articles = soup.find_all("article")
    if len(articles) == 1 and isinstance(articles[0], Tag):
        return articles[0]
    body = soup.find("body")
    return body if isinstance(body, Tag) else soup


def _sections_from_marked(text: str) -> Iterable[Section]:
    """Split text carrying heading marks into sections with heading paths."""
    path = HeadingPath()
    headings: tuple[str, ...] = ()
    parts = text.split(_HEADING_MARK)
    yield Section(tidy(parts[0]))
    for part in parts[1:]:
        level, _, rest = part.partition(_HEADING_END)
        heading = " ".join(level[1:].split())
        headings = path.enter(int(level[0]), heading) if heading else headings
        yield Section(tidy(f"{heading}\n\n{rest}"), headings=headings)
