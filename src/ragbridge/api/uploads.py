"""Read one file from a multipart upload as it streams in, refusing it the moment it grows past
the size limit (never buffering more than the limit, never reading the rest of an oversized
body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ragbridge.errors import InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_MAX_FIELD_BYTES = 64 * 1024  # other form fields are ignored, but bounded
_MAX_PARTS = 16
_MAX_NAME_CHARS = 512


def safe_upload_name(raw: str) -> str:
    """The client's file name as a relative path: `/` or `\\` separated parts, without empty,
    `.` and `..` parts or a drive, control characters dropped. Directories are kept so that
    `../../etc/x.txt` (`etc/x.txt`) and `..\\..\\x.txt` (`x.txt`) stay two documents; the name
    is a document key, never a path ragbridge opens."""
    printable = "".join(ch for ch in raw if ch.isprintable())
    parts = [part.strip() for part in printable.replace("\\", "/").split("/")]
    kept = [part for part in parts if part not in ("", ".", "..")]
    if kept and len(kept[0]) == 2 and kept[0][1] == ":":  # C:
        kept = kept[1:]
    return "/".join(kept)[-_MAX_NAME_CHARS:]


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name as the client gave it (a safe relative path) and its bytes."""

    filename: str
    data: bytes


@dataclass
class _Reader:
    """Multipart callbacks collecting the file field, enforcing the limits as bytes arrive."""

    field_name: str
    limit: int
    parts: int = 0
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    in_file: bool = False
    filename: str | None = None
    size: int = 0
    data: bytearray = field(default_factory=bytearray)
    done: bool = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise InvalidRequest(f"Too many form fields; send only `{self.field_name}`.")
        self.disposition = b""
        self.in_file = False
        self.size = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.header_field).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != self.field_name or self.done:
            return
        raw = options.get(b"filename", b"").decode("utf-8", "replace")
        filename = safe_upload_name(raw)
        if not filename:
            raise InvalidRequest(
                f"The `{self.field_name}` field needs a file name.", param=self.field_name
            )
        self.in_file = True
        self.filename = filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.in_file:
            if self.size > self.limit:
                raise PayloadTooLarge(
                    f"{self.filename}: larger than the upload limit of {self.limit} bytes "
                    "(RAGBRIDGE_MAX_UPLOAD_BYTES).",
                    param=self.field_name,
                    code="file_too_large",
                )
            self.data += data[start:end]
        elif self.size > _MAX_FIELD_BYTES:
            raise InvalidRequest("A form field is too large.", code="field_too_large")

    def on_part_end(self) -> None:
        if self.in_file:
            self.done = True
            self.in_file = False


async def read_upload(request: Request, field_name: str, limit: int) -> Upload:
    """The file in form field `field_name`; `PayloadTooLarge` as soon as it passes `limit`."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            f"Send the document as multipart/form-data with a `{field_name}` file field.",
            param=field_name,
        )
    reader = _Reader(field_name, limit)
    parser = MultipartParser(boundary, reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ParseError as exc:
        raise InvalidRequest(f"Malformed multipart body: {exc}", param=field_name) from exc
    if not reader.done or reader.filename is None:
        raise InvalidRequest(f"No file in the `{field_name}` field.", param=field_name)
    return Upload(reader.filename, bytes(reader.data))
