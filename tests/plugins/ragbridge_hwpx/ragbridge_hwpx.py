"""HWPX (Hancom Office's OWPML, the zip-of-XML successor of HWP) for ragbridge.

A third-party loader plugin: the text of each `Contents/sectionN.xml` in order, one paragraph
per `<hp:p>`, titled by the package's `<opf:title>`.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from ragbridge.errors import DocumentError
from ragbridge.ingest.documents import LoadedDocument, Section, whole_file
from ragbridge.ingest.limits import IngestLimits
from ragbridge.plugins import LoaderPlugin

PARAGRAPH = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
OPF = "{http://www.idpf.org/2007/opf/}"
_SECTION = re.compile(r"^Contents/section(\d+)\.xml$")


def read_hwpx(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """One document: a section per HWPX section, paragraphs separated by blank lines."""
    inflated = limits.inflate_zip(source, data)  # a zip bomb is refused before it inflates
    try:
        archive = zipfile.ZipFile(io.BytesIO(inflated))
        if archive.read("mimetype").strip() != b"application/hwp+zip":
            raise DocumentError(f"{source}: not an HWPX package", code="corrupt_document")
        names = sorted(
            (int(m.group(1)), name)
            for name in archive.namelist()
            if (m := _SECTION.match(name)) is not None
        )
        sections = [Section(_section_text(archive.read(name))) for _, name in names]
        title = _title(archive)
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError) as exc:
        raise DocumentError(
            f"{source}: corrupt or unreadable HWPX ({type(exc).__name__}: {exc})",
            code="corrupt_document",
        ) from exc
    return whole_file(source, data, "hwpx", sections, title)


def _section_text(xml: bytes) -> str:
    root = ElementTree.fromstring(xml)  # top-level paragraphs; a table's text stays in its own
    paragraphs = (
        "".join(t.text or "" for t in p.iter(f"{PARAGRAPH}t"))
        for p in root.findall(f"{PARAGRAPH}p")
    )
    return "\n\n".join(text.strip() for text in paragraphs if text.strip())


def _title(archive: zipfile.ZipFile) -> str:
    try:
        root = ElementTree.fromstring(archive.read("Contents/content.hpf"))
    except KeyError:
        return ""
    title = root.find(f".//{OPF}title")
    return (title.text or "") if title is not None else ""


LOADER = LoaderPlugin(extensions=(".hwpx",), read=read_hwpx)
