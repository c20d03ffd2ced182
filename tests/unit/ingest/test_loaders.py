"""Every reader on real generated files: structure (pages, headings, records), encodings, and a
clear error naming the file for each kind of bad input."""

from __future__ import annotations

import io
import json
import zipfile

import docx
import pypdf
import pytest

from ragbridge.errors import DocumentError, UnsupportedMediaType
from ragbridge.ingest.documents import LoadedDocument
from ragbridge.ingest.loaders import detect_format, load
from tests.support import documents as generated


def only(documents: list[LoadedDocument]) -> LoadedDocument:
    assert len(documents) == 1
    return documents[0]


def squash(text: str) -> str:
    """Whitespace-insensitive text (PDF extraction breaks lines where the page did)."""
    return " ".join(text.split())


# --- PDF ------------------------------------------------------------------------------------
def test_pdf_has_one_section_per_page_with_zero_based_page_numbers() -> None:
    document = only(load(generated.pdf_bytes(), "manuals/aurora.pdf"))
    assert document.format == "pdf"
    assert document.source == "manuals/aurora.pdf"
    assert document.title == "Aurora valve manual"
    assert [section.page for section in document.sections] == [0, 1, 2]
    facts = ("pdf_page_1", "pdf_page_2", "pdf_page_3")
    for section, fact in zip(document.sections, facts, strict=True):
        assert generated.FACTS[fact] in squash(section.text)


def test_pdf_korean_page_is_extracted() -> None:
    assert generated.korean_font_path(), "no Hangul font (scripts/install-test-deps installs one)"
    document = only(load(generated.pdf_bytes(korean=True), "manual.pdf"))
    assert generated.FACTS["korean_text"].split()[0] in document.sections[-1].text


def test_encrypted_pdf_is_a_document_error_naming_the_file() -> None:
    with pytest.raises(DocumentError) as caught:
        load(generated.encrypted_pdf_bytes(), "locked.pdf")
    assert caught.value.status == 422
    assert caught.value.code == "encrypted_document"
    assert caught.value.message.startswith("locked.pdf: ")
    assert "encrypted" in caught.value.message


def test_pdf_with_only_an_owner_password_opens() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(generated.pdf_bytes())))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    document = only(load(buffer.getvalue(), "protected.pdf"))
    assert generated.FACTS["pdf_page_2"] in squash(document.sections[1].text)


def test_corrupt_pdf_is_a_document_error_naming_the_file() -> None:
    with pytest.raises(DocumentError) as caught:
        load(generated.corrupt_pdf_bytes(), "broken.pdf")
    assert caught.value.code == "corrupt_document"
    assert caught.value.message.startswith("broken.pdf: corrupt or unreadable PDF")


def test_pdf_without_a_text_layer_says_it_needs_ocr() -> None:
    with pytest.raises(DocumentError, match=r"scan\.pdf: .*no extractable text.*OCR"):
        load(generated.scanned_pdf_bytes(), "scan.pdf")


# --- DOCX -----------------------------------------------------------------------------------
def test_docx_sections_carry_their_heading_paths() -> None:
    document = only(load(generated.docx_bytes(), "guide.docx"))
    assert document.title == "Borealis pump guide"
    by_heading = {section.headings: section.text for section in document.sections}
    assert generated.FACTS["docx_install"] in by_heading[("Installation",)]
    electrical = by_heading[("Installation", "Electrical connection")]
    assert "Maximum head | 12 metres" in electrical  # the table, row by row
    korean = by_heading[("Maintenance", "유지 보수 (한국어)")]
    assert generated.FACTS["docx_korean"] in korean
    assert all(section.page is None for section in document.sections)


def test_corrupt_docx_is_a_document_error() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<not-xml")
    with pytest.raises(DocumentError, match=r"^bad\.docx: corrupt or unreadable DOCX"):
        load(buffer.getvalue(), "bad.docx")


def test_docx_paragraph_text_is_complete() -> None:
    built = docx.Document()
    built.add_paragraph("First paragraph with " + "many words " * 50)
    built.add_paragraph("둘째 문단입니다.")
    buffer = io.BytesIO()
    built.save(buffer)
    document = only(load(buffer.getvalue(), "plain.docx"))
    assert document.title == "plain.docx"  # no core title, no heading: the file name
    assert document.text.count("many words") == 50
    assert document.text.endswith("둘째 문단입니다.")


# --- HTML -----------------------------------------------------------------------------------
def test_html_keeps_main_text_and_drops_navigation_scripts_and_footer() -> None:
    document = only(load(generated.html_bytes(), "lighthouse.html"))
    assert document.title == "Meridian lighthouse"
    text = document.text
    assert generated.FACTS["html_main"] in squash(text)
    assert "forty metres above the sea" in squash(text)  # inline <b> stays inside its sentence
    for noise in (*generated.HTML_NOISE, "Related: other lighthouses", "font-family"):
        assert noise not in text
    headings = [section.headings for section in document.sections]
    assert ("The Meridian lighthouse", "Visiting", "Access") in headings
    assert ("The Meridian lighthouse", "History") in headings  # h2 after h3 pops back
    assert "Adults: 12 euros\nChildren: free" in text
    assert "1887 | First light" in text


def test_html_in_a_legacy_encoding_is_decoded_from_its_meta_charset() -> None:
    page = (
        '<html><head><meta charset="euc-kr"><title>경복궁</title></head>'
        f"<body><p>{generated.FACTS['cp949_text']}</p></body></html>"
    )
    document = only(load(page.encode("euc-kr"), "palace.html"))
    assert document.title == "경복궁"
    assert generated.FACTS["cp949_text"] in document.text


# --- Markdown and text ------------------------------------------------------------------------
def test_markdown_is_split_at_headings_but_not_at_comments_in_code() -> None:
    document = only(load(generated.markdown_bytes(), "zephyr.md"))
    assert document.title == "Zephyr sensor"
    sections = {section.headings: section.text for section in document.sections}
    assert sections[()] == "Intro before any heading."
    setup = sections[("Zephyr sensor", "Setup")]
    assert setup.startswith("Setup\n\n" + generated.FACTS["markdown_setup"])
    assert "# not a heading: a shell comment" in setup
    assert ("Zephyr sensor", "Setup", "Mounting") in sections
    assert ("Zephyr sensor", "Troubleshooting") in sections  # setext heading, level 2
    assert "풍속과 풍향" in sections[("Zephyr sensor", "한국어 안내")]


@pytest.mark.parametrize(
    ("data", "fact"),
    [
        (generated.english_text_bytes(), "english_text"),
        (generated.korean_text_bytes(), "korean_text"),
        (generated.cp949_text_bytes(), "cp949_text"),
        (generated.latin1_text_bytes(), "latin1_text"),
        (("\ufeff" + generated.FACTS["korean_text"]).encode("utf-16-le"), "korean_text"),
    ],
    ids=["english", "korean", "cp949", "latin-1", "utf-16"],
)
def test_text_encodings_are_detected(data: bytes, fact: str) -> None:
    document = only(load(data, "notes.txt"))
    assert document.format == "text"
    assert document.title == "notes.txt"
    assert generated.FACTS[fact] in document.text


# --- JSON, JSON Lines, CSV --------------------------------------------------------------------
def test_json_catalogue_becomes_one_document_per_key() -> None:
    documents = load(generated.catalogue_json_bytes(), "shop/catalogue.json")
    expected = [f"shop/catalogue.json#{key}" for key in generated.CATALOGUE]
    assert [d.source for d in documents] == expected
    for document, (key, description) in zip(documents, generated.CATALOGUE.items(), strict=True):
        assert document.title == key
        assert document.text == f"{key}\n{description}"
    assert len({d.content_hash for d in documents}) == 3


def test_changing_one_record_changes_only_its_hash() -> None:
    before = load(generated.catalogue_json_bytes(), "c.json")
    changed = {**generated.CATALOGUE, "SKU002": "Blue denim jacket, now with a hood."}
    after = load(json.dumps(changed).encode(), "c.json")
    same = [a.content_hash == b.content_hash for a, b in zip(after, before, strict=True)]
    assert same == [True, False, True]


def test_json_array_of_objects_becomes_one_document_per_element() -> None:
    documents = load(generated.products_json_bytes(), "products.json")
    assert [d.source for d in documents] == [f"products.json#row-{n}" for n in (1, 2, 3)]
    assert [d.title for d in documents] == [p["name"] for p in generated.PRODUCTS]
    assert documents[0].text.splitlines() == [
        "id: 1",
        "name: Trail runner shoe",
        "price: 129.0",
        "tags: running, outdoor",
    ]


def test_json_of_another_shape_is_one_document_of_flattened_fields() -> None:
    value = {"name": "ragbridge", "version": 2, "owner": {"team": "search"}, "items": [{"a": 1}]}
    document = only(load(json.dumps(value).encode(), "config.json"))
    assert document.source == "config.json"
    assert document.text.splitlines() == [
        "name: ragbridge",
        "version: 2",
        "owner.team: search",
        "items[0].a: 1",
    ]


def test_json_lines_become_one_document_per_line() -> None:
    documents = load(generated.jsonl_bytes(), "products.jsonl")
    assert [d.format for d in documents] == ["jsonl"] * 3
    assert documents[2].title == "방수 등산 재킷"


@pytest.mark.parametrize(("name", "delimiter"), [("cities.csv", ","), ("cities.tsv", "\t")])
def test_csv_becomes_one_document_per_row_with_header_field_names(
    name: str, delimiter: str
) -> None:
    documents = load(generated.csv_bytes(delimiter), name)
    assert [d.source for d in documents] == [f"{name}#row-{n}" for n in (1, 2, 3)]
    assert documents[1].text == (
        "city: Busan\ncountry: South Korea\npopulation: 3350000\nnote: 해운대 해수욕장"
    )
    assert documents[2].title == "Tromsø"


def test_csv_in_cp949_is_decoded() -> None:
    data = "도시,설명\n부산,해운대 해수욕장이 유명합니다\n".encode("cp949")
    assert only(load(data, "cities.csv")).text == "도시: 부산\n설명: 해운대 해수욕장이 유명합니다"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"city,country\n", "header.csv", "header.csv: the CSV has no data rows"),
        (b'{"a": ', "broken.json", "broken.json: invalid JSON"),
        (b'{"a": 1}\n{oops\n', "lines.jsonl", "lines.jsonl line 2: invalid JSON"),
        (b'{"a": "", "b": ""}', "blank.json", "blank.json: no records with text"),
    ],
)
def test_bad_records_are_document_errors(data: bytes, name: str, message: str) -> None:
    with pytest.raises(DocumentError) as caught:
        load(data, name)
    assert caught.value.message.startswith(message)


# --- empty, unsupported, sniffing ---------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"  \n\t \n"])
def test_empty_file_is_a_document_error(data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"^empty\.txt: the file is empty$"):
        load(data, "empty.txt")


def test_empty_html_is_a_document_error() -> None:
    with pytest.raises(DocumentError, match=r"^blank\.html: no text found"):
        load(b"<html><body><nav>Home</nav><script>x()</script></body></html>", "blank.html")


@pytest.mark.parametrize("name", ["image.png", "photo", "archive.xlsx"])
def test_binary_formats_are_unsupported_media_types(name: str) -> None:
    data = generated.png_bytes() if name != "archive.xlsx" else b"PK\x03\x04\x00\x00xl/x\x00\x01"
    with pytest.raises(UnsupportedMediaType) as caught:
        load(data, name)
    assert caught.value.status == 415
    assert caught.value.message.startswith(f"{name}: unsupported file type")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (generated.pdf_bytes(), "pdf"),
        (generated.docx_bytes(), "docx"),
        (generated.html_bytes(), "html"),
        (generated.products_json_bytes(), "json"),
        (generated.korean_text_bytes(), "text"),
        (b"[not json at all", "text"),
    ],
)
def test_content_decides_when_the_extension_says_nothing(data: bytes, expected: str) -> None:
    assert detect_format(data, "upload") == expected
    assert detect_format(data, "notes.unknown") == expected
    assert load(data, "upload")[0].format == expected
