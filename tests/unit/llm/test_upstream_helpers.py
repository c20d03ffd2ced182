"""Mapped upstream headers, Retry-After parsing and upstream error messages."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.datastructures import Headers

from ragbridge.errors import InvalidRequest, NotFound, RateLimited, UpstreamError, UpstreamTimeout
from ragbridge.llm.upstream import header_bytes, resolve_headers, status_error
from ragbridge.retry import retry_after_seconds


def test_headers_are_filled_from_the_incoming_request_case_insensitively() -> None:
    templates = {
        "User-Id": "{request.header.X-OpenWebUI-User-Id}",
        "X-Ticket": "T-1",
        "X-Who": "{request.header.x-openwebui-user-name} <{request.header.X-OpenWebUI-User-Email}>",
    }
    incoming = Headers(
        {
            "x-openwebui-user-id": "7e83",
            "X-OpenWebUI-User-Name": "Ada",
            "x-openwebui-user-email": "a@example.com",
        }
    )
    assert resolve_headers(templates, incoming) == {
        "User-Id": "7e83",
        "X-Ticket": "T-1",
        "X-Who": "Ada <a@example.com>",
    }


def test_non_ascii_header_values_are_forwarded_byte_for_byte() -> None:
    incoming = Headers(raw=[(b"x-openwebui-user-name", "김철수".encode())])
    copied = resolve_headers({"User-Name": "{request.header.X-OpenWebUI-User-Name}"}, incoming)
    assert header_bytes(copied["User-Name"]) == "김철수".encode()
    assert header_bytes("티켓-1") == "티켓-1".encode()


def test_a_header_whose_source_is_missing_is_left_out() -> None:
    templates = {"User-Id": "{request.header.X-OpenWebUI-User-Id}", "X-Ticket": "T-1"}
    assert resolve_headers(templates, Headers({})) == {"X-Ticket": "T-1"}


def test_copied_values_cannot_inject_header_lines() -> None:
    resolved = resolve_headers({"User-Id": "{request.header.X-Id}"}, {"X-Id": "a\r\nEvil: 1"})
    assert resolved == {"User-Id": "a  Evil: 1"}


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("", None), ("soon", None)]
)
def test_retry_after_delta_seconds(value: str, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after_seconds(when)
    assert seconds is not None and 25 <= seconds <= 31


def _response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "kind", "http_status", "text"),
    [
        (503, {"error": {"message": "overloaded"}}, UpstreamError, 502, "overloaded"),
        (500, "<html>boom</html>", UpstreamError, 502, "boom"),
        (504, {"detail": "gateway timeout"}, UpstreamTimeout, 504, "gateway timeout"),
        (401, {"error": "bad key"}, UpstreamError, 502, "credentials"),
        (400, {"error": {"message": "tools[0] invalid"}}, InvalidRequest, 400, "tools[0] invalid"),
        (404, {"error": {"message": "model llama9 not found"}}, NotFound, 404, "llama9"),
        (429, {"error": {"message": "slow down"}}, RateLimited, 429, "slow down"),
    ],
)
def test_upstream_failures_map_to_our_errors_with_their_message(
    status: int, body: object, kind: type, http_status: int, text: str
) -> None:
    error = status_error(_response(status, body), attempts=1)
    assert isinstance(error, kind)
    assert error.status == http_status
    assert text in error.message


def test_rate_limit_keeps_retry_after_and_attempts_are_counted() -> None:
    error = status_error(_response(429, {}, {"Retry-After": "7"}), attempts=4)
    assert error.headers == {"Retry-After": "7"}
    assert "after 4 attempts" in status_error(_response(502, {}), attempts=4).message
