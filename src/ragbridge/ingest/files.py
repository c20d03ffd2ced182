"""Which files a run ingests, under which source names, and reading them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ragbridge.errors import DocumentError
from ragbridge.ingest.loaders import extension_formats

_READ_FAILURES = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory"}


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest and the source name its documents get (stable across runs)."""

    path: Path
    source: str


@dataclass(frozen=True)
class Discovery:
    """The files found under the given paths, and those passed over in folders."""

    files: list[SourceFile]
    skipped: list[Path]
    """Files in folders whose extension ragbridge does not read (hidden ones are not listed)."""


def discover(paths: Iterable[Path]) -> Discovery:
    """Files named directly (source: the file name) and files found in folders, recursively
    (source: the path below that folder, e.g. `guides/setup.md`). Folder walks take only
    known extensions and skip hidden files and folders; a path named twice counts once.
    A path that does not exist is kept, so that it fails with a clear message."""
    files: dict[Path, SourceFile] = {}
    skipped: list[Path] = []
    known = extension_formats()
    for path in paths:
        if not path.is_dir():
            files.setdefault(path.resolve(), SourceFile(path, path.name))
            continue
        for found in sorted(path.rglob("*")):
            relative = found.relative_to(path)
            if any(part.startswith(".") for part in relative.parts) or not found.is_file():
                continue
            if found.suffix.lower() not in known:
                skipped.append(found)
                continue
            files.setdefault(found.resolve(), SourceFile(found, relative.as_posix()))
    return Discovery(list(files.values()), skipped)


async def read_source(file: SourceFile) -> bytes:
    """The file's bytes; an unreadable or missing file is a `DocumentError` naming it."""
    try:
        return await asyncio.to_thread(file.path.read_bytes)
    except OSError as exc:
        reason = _READ_FAILURES.get(type(exc), f"cannot read the file ({exc.strerror or exc})")
        raise DocumentError(f"{file.source}: {reason}", code="unreadable_document") from exc
