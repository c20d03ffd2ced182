"""Small HWPX packages (Hancom Office's zip-of-XML format) written the way Hangul saves them."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

_SECTION = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<hs:sec xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section"'
    ' xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph">{paragraphs}</hs:sec>'
)
_PARAGRAPH = (
    '<hp:p id="{n}" paraPrIDRef="0" styleIDRef="0"><hp:run charPrIDRef="0">{runs}</hp:run></hp:p>'
)
_CONTENT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<opf:package xmlns:opf="http://www.idpf.org/2007/opf/" version="" unique-identifier="" id="">'
    "<opf:metadata><opf:title>{title}</opf:title><opf:language>ko</opf:language></opf:metadata>"
    "<opf:manifest>{items}</opf:manifest></opf:package>"
)


def write_hwpx(path: Path, title: str, sections: list[list[str]]) -> Path:
    """An HWPX file: `mimetype` first and stored, a manifest, one XML file per section; a
    paragraph's text is split over two runs of `<hp:t>` as Hangul does at formatting changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/hwp+zip", compress_type=zipfile.ZIP_STORED)
        items = "".join(
            f'<opf:item id="section{i}" href="Contents/section{i}.xml" media-type="text/xml"/>'
            for i in range(len(sections))
        )
        archive.writestr("Contents/content.hpf", _CONTENT.format(title=escape(title), items=items))
        for i, paragraphs in enumerate(sections):
            body = "".join(
                _PARAGRAPH.format(n=n, runs=_runs(text)) for n, text in enumerate(paragraphs)
            )
            archive.writestr(f"Contents/section{i}.xml", _SECTION.format(paragraphs=body))
    return path


def _runs(text: str) -> str:
    half = len(text) // 2
    return "".join(f"<hp:t>{escape(part)}</hp:t>" for part in (text[:half], text[half:]) if part)
