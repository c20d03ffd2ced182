"""Passage links and `url_citation` annotations (`ragbridge.citations`)."""

from __future__ import annotations

from ragbridge.citations import passage_url, url_annotations


def test_passage_urls_point_at_the_json_view_or_the_console() -> None:
    assert (
        passage_url("https://rb.example/", "매뉴얼 2024", "doc/1", 3)
        == "https://rb.example/v1/collections/%EB%A7%A4%EB%89%B4%EC%96%BC%202024/documents/doc%2F1#chunk-3"
    )
    assert passage_url("http://h:8000", "docs", "d1", 0, console=True) == (
        "http://h:8000/collections/docs/documents/d1#chunk-0"
    )


def test_annotations_follow_source_order_with_marker_spans() -> None:
    sources = [("u1", "a.pdf, page 2"), ("u2", "b.md"), ("u3", "c.txt")]
    text = "둘째 [2], 첫째 [1][2]."
    spans = [
        (a["url_citation"]["url"], a["url_citation"]["start_index"], a["url_citation"]["end_index"])
        for a in url_annotations(text, sources)
    ]
    # one annotation per source, at its first marker: Open WebUI lists one source per annotation
    assert spans == [("u1", 11, 14), ("u2", 3, 6), ("u3", 18, 18)]
    assert text[11:14] == "[1]" and text[3:6] == "[2]"
    assert url_annotations("no markers [9]", sources)[0]["url_citation"]["start_index"] == 14
    assert url_annotations("x", []) == []
