"""Real documents generated for tests: every format ragbridge reads, in English and Korean, plus
broken ones (corrupt, encrypted, empty, unsupported). Each `*_bytes` function returns a complete
file; `write_corpus` and `write_bad_files` lay them out in a folder.

The texts carry distinctive facts (a product code, a person, a number) that search tests can look
for: see `FACTS`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import docx
import pypdf
from fpdf import FPDF

FACTS = {
    "pdf_page_1": "The Aurora valve must be inspected every 90 days by a certified technician.",
    "pdf_page_2": "Warranty claims for the Aurora valve are handled by Helga Lindqvist in Oslo.",
    "pdf_page_3": "Firmware 4.2 added remote shutdown over the Modbus interface.",
    "docx_install": "Mount the Borealis pump at least 40 centimetres above the floor.",
    "docx_korean": "보레알리스 펌프는 매년 3월에 필터를 교체해야 합니다.",
    "html_main": "The Meridian lighthouse was automated in 1987 and still guides ships today.",
    "markdown_setup": "Run the calibration wizard before the first measurement with Zephyr.",
    "english_text": "Quokkas live on Rottnest Island and are famous for their apparent smiles.",
    "korean_text": "한라산은 제주도에 있으며 높이는 1,947미터로 남한에서 가장 높은 산입니다.",
    "cp949_text": "경복궁은 1395년에 창건된 조선 왕조의 법궁입니다.",
    "latin1_text": "Le café du Château ouvre à sept heures précises.",
}
"""A sentence per file that appears in it verbatim (PDF text modulo whitespace)."""

HTML_NOISE = ("Home | Products | Contact", "trackVisitor", "Copyright 2024 Meridian Trust")
"""Text that sits in nav, script and footer of `html_bytes()` and must not be ingested."""

CATALOGUE = {
    "SKU001": "Red cotton t-shirt, crew neck, sizes S to XXL. Machine washable at 40 degrees.",
    "SKU002": "Blue denim jacket with brass buttons and two chest pockets.",
    "SKU003": "초록색 울 스웨터, 겨울용 두꺼운 니트, 손세탁 권장.",
}
PRODUCTS = [
    {"id": 1, "name": "Trail runner shoe", "price": 129.0, "tags": ["running", "outdoor"]},
    {"id": 2, "name": "Merino base layer", "price": 89.5, "tags": ["wool", "winter"]},
    {"id": 3, "name": "방수 등산 재킷", "price": 210.0, "tags": ["hiking", "rain"]},
]
CSV_ROWS = [
    {"city": "Lisbon", "country": "Portugal", "population": "545000", "note": "Seven hills"},
    {"city": "Busan", "country": "South Korea", "population": "3350000", "note": "해운대 해수욕장"},
    {"city": "Tromsø", "country": "Norway", "population": "77000", "note": "Northern lights"},
]


def english_paragraphs() -> list[str]:
    """Four English paragraphs; the second carries `FACTS["english_text"]`."""
    return [
        "Australia is home to many unusual animals. Some of them are found nowhere else, and "
        "several live only on small islands off the coast.",
        FACTS["english_text"] + " They are herbivores and are mostly active at night. "
        "Visitors are asked not to feed or touch them.",
        "Rottnest Island lies about eighteen kilometres off the coast of Perth. Ferries run "
        "from Fremantle several times a day, and bicycles are the usual way to get around.",
        "Conservation rules on the island are strict. Fines apply to anyone who harms the "
        "wildlife, and the population is monitored every year by rangers.",
    ]


def korean_paragraphs() -> list[str]:
    """Three Korean paragraphs; the first carries `FACTS["korean_text"]`."""
    return [
        FACTS["korean_text"] + " 정상에는 백록담이라는 화구호가 있습니다. "
        "등산로는 성판악과 관음사 코스가 대표적입니다.",
        "제주도는 화산 활동으로 만들어진 섬입니다. 유네스코 세계자연유산으로 등재되었고, "
        "매년 많은 관광객이 찾아옵니다. 돌하르방과 해녀 문화도 유명해요.",
        "겨울에는 정상 부근에 눈이 많이 내립니다. 입산 시간은 계절마다 다르니 미리 확인하세요!",
    ]


def english_text_bytes() -> bytes:
    return "\n\n".join(english_paragraphs()).encode()


def korean_text_bytes() -> bytes:
    return "\n\n".join(korean_paragraphs()).encode()


def cp949_text_bytes() -> bytes:
    """Korean text in the legacy Windows encoding (cp949), not UTF-8."""
    text = (
        FACTS["cp949_text"] + " 궁궐 안에는 근정전과 경회루가 있으며, 임진왜란 때 불에 탔다가 "
        "고종 때 다시 지어졌습니다. 지금은 많은 사람들이 한복을 입고 방문합니다."
    )
    return text.encode("cp949")


def latin1_text_bytes() -> bytes:
    """French text in ISO-8859-1, not UTF-8."""
    text = (
        FACTS["latin1_text"] + " Les crêpes y sont préparées à la minute, et le thé est servi "
        "dans des tasses en porcelaine. Réservation conseillée le dimanche."
    )
    return text.encode("latin-1")


def korean_font_path() -> Path | None:
    """A TTF/OTF font with Hangul, if the machine has one (fontconfig), for a Korean PDF page."""
    if shutil.which("fc-list") is None:
        return None
    listed = subprocess.run(
        ["fc-list", ":lang=ko", "file"], capture_output=True, text=True, check=False
    ).stdout
    for line in listed.splitlines():
        path = Path(line.split(":")[0].strip())
        if path.suffix.lower() in (".ttf", ".otf") and path.exists():
            return path
    return None


def pdf_pages() -> list[str]:
    """Text of each page of `pdf_bytes()` (ASCII: the built-in PDF fonts are Latin-1 only)."""
    return [
        "Aurora valve service manual. " + FACTS["pdf_page_1"] + " Record each inspection in "
        "the maintenance log, including the pressure reading and the technician's name.",
        "Support and warranty. " + FACTS["pdf_page_2"] + " Claims must include the serial "
        "number printed on the valve body and proof of purchase.",
        "Release notes. " + FACTS["pdf_page_3"] + " Earlier versions need a manual reset "
        "after a power failure.",
    ]


def pdf_bytes(
    pages: list[str] | None = None, *, title: str = "Aurora valve manual", korean: bool = False
) -> bytes:
    """A PDF with one page per text; with `korean=True` and a Hangul font present, one more page
    with `korean_paragraphs()`."""
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages if pages is not None else pdf_pages():
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    font = korean_font_path() if korean else None
    if font is not None:
        pdf.add_font("Korean", fname=str(font))
        pdf.set_font("Korean", size=12)
        pdf.add_page()
        pdf.multi_cell(0, 8, "\n\n".join(korean_paragraphs()))
    return bytes(pdf.output())


def encrypted_pdf_bytes(password: str = "s3cret") -> bytes:
    """`pdf_bytes()` locked with a user password."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes())))
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf_bytes() -> bytes:
    """A PDF header followed by garbage: the body and cross-reference table are destroyed."""
    good = pdf_bytes()
    return good[:16] + bytes((b * 7 + 13) % 256 for b in good[16:400]) + b"\n%%EOF\n"


def scanned_pdf_bytes() -> bytes:
    """A PDF whose pages have no text layer (as from a scanner without OCR)."""
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def docx_bytes() -> bytes:
    """A DOCX with a title, nested headings, paragraphs, a table and a Korean section."""
    document = docx.Document()
    document.core_properties.title = "Borealis pump guide"
    document.add_heading("Borealis pump guide", level=0)
    document.add_paragraph("This guide covers installation and maintenance of the pump.")
    document.add_heading("Installation", level=1)
    document.add_paragraph(FACTS["docx_install"] + " Use the supplied brackets.")
    document.add_heading("Electrical connection", level=2)
    document.add_paragraph("Connect the pump to a grounded 230 V outlet with a residual current.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Setting"
    table.cell(0, 1).text = "Value"
    table.cell(1, 0).text = "Maximum head"
    table.cell(1, 1).text = "12 metres"
    document.add_heading("Maintenance", level=1)
    document.add_paragraph("Check the seals every six months.")
    document.add_heading("유지 보수 (한국어)", level=2)
    document.add_paragraph(FACTS["docx_korean"] + " 교체 후에는 누수 여부를 확인하세요.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def html_bytes() -> bytes:
    """An HTML page whose content sits in <main> among nav, header, script, aside and footer."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Meridian lighthouse</title>
<style>body {{ font-family: serif; }}</style>
<script>function trackVisitor() {{ return 1; }}</script></head>
<body>
<header><div class="logo">Meridian Trust</div></header>
<nav><a href="/">Home</a> | <a href="/p">Products</a> | <a href="/c">Contact</a></nav>
<p style="display:none">{HTML_NOISE[0]}</p>
<main>
  <h1>The Meridian lighthouse</h1>
  <p>{FACTS["html_main"]} It stands on a granite
     outcrop <b>forty metres</b> above the sea.</p>
  <h2>Visiting</h2>
  <p>Tours run from April to October.</p>
  <ul><li>Adults: 12 euros</li><li>Children: free</li></ul>
  <h3>Access</h3>
  <p>A coastal path leads from the village to the tower.</p>
  <h2>History</h2>
  <table><tr><th>Year</th><th>Event</th></tr><tr><td>1887</td><td>First light</td></tr></table>
</main>
<aside>Related: other lighthouses</aside>
<footer>{HTML_NOISE[2]}</footer>
<script>trackVisitor();</script>
</body></html>
""".encode()


def markdown_bytes() -> bytes:
    """Markdown with nested ATX headings, a setext heading and a fenced block holding a `#`."""
    return f"""Intro before any heading.

# Zephyr sensor

The Zephyr sensor measures wind speed and direction.

## Setup

{FACTS["markdown_setup"]}

```bash
# not a heading: a shell comment
zephyr calibrate --all
```

### Mounting

Mount it on a mast at least two metres high.

Troubleshooting
---------------

If readings are flat, check the cable.

## 한국어 안내

제퍼 센서는 풍속과 풍향을 측정합니다. 설치 전에 보정 마법사를 실행하세요.
""".encode()


def catalogue_json_bytes() -> bytes:
    """The catalogue shape: an object mapping product codes to descriptions."""
    return json.dumps(CATALOGUE, ensure_ascii=False, indent=2).encode()


def products_json_bytes() -> bytes:
    """An array of product objects."""
    return json.dumps(PRODUCTS, ensure_ascii=False).encode()


def jsonl_bytes() -> bytes:
    """JSON Lines: one product object per line."""
    return "\n".join(json.dumps(p, ensure_ascii=False) for p in PRODUCTS).encode()


def csv_bytes(delimiter: str = ",") -> bytes:
    """A CSV (or with `delimiter="\\t"` a TSV) of cities with a header row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_ROWS[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(CSV_ROWS)
    return buffer.getvalue().encode()


def png_bytes() -> bytes:
    """A 1x1 PNG image: a real binary format ragbridge does not read."""
    return bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )


def good_files() -> dict[str, bytes]:
    """Relative path -> content of one good file per supported format (one in a subfolder)."""
    return {
        "manual.pdf": pdf_bytes(korean=True),
        "guide.docx": docx_bytes(),
        "lighthouse.html": html_bytes(),
        "zephyr.md": markdown_bytes(),
        "notes/quokka.txt": english_text_bytes(),
        "notes/hallasan.txt": korean_text_bytes(),
        "notes/gyeongbokgung-cp949.txt": cp949_text_bytes(),
        "notes/cafe-latin1.txt": latin1_text_bytes(),
        "catalogue.json": catalogue_json_bytes(),
        "products.json": products_json_bytes(),
        "cities.csv": csv_bytes(),
    }


def bad_files() -> dict[str, bytes]:
    """Relative path -> content of files that must fail, each for its own reason."""
    return {
        "broken.pdf": corrupt_pdf_bytes(),
        "locked.pdf": encrypted_pdf_bytes(),
        "empty.txt": b"",
        "image.png": png_bytes(),
    }


def write_files(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write `files` under `directory`; returns relative path -> absolute path."""
    written = {}
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written[relative] = path
    return written


def write_corpus(directory: Path) -> dict[str, Path]:
    """Every good file of `good_files()` under `directory`."""
    return write_files(directory, good_files())


def write_bad_files(directory: Path) -> dict[str, Path]:
    """Every file of `bad_files()` under `directory`."""
    return write_files(directory, bad_files())


def pdf_with_parser_warnings_bytes() -> bytes:
    """A readable PDF whose `startxref` points 7 bytes off: pypdf reads it, warning as it goes."""
    data = pdf_bytes()
    return re.sub(
        rb"startxref\s+(\d+)", lambda m: b"startxref\n" + str(int(m.group(1)) + 7).encode(), data
    )
