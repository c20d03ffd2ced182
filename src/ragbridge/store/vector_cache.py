"""The embedded store's in-memory vector matrices and filter results, shared by readers and the
writer, bounded in bytes (least recently used out). A matrix is stamped with the collection's
highest vector row id; an older one than a reader's snapshot is read again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragbridge.store.base import Vector
from ragbridge.store.vector_index import IdArray, VectorIndex

_FILTER_CACHE_SIZE = 64

Change = tuple[IdArray, IdArray, Vector]
"""What one write did to a collection's vectors: (removed row ids, added row ids, their rows)."""


@dataclass
class _Cached:
    stamp: int
    index: VectorIndex


class VectorCache:
    """Collections' vector matrices and filter results, at most `max_bytes` of matrices.

    Thread-safe: one lock guards the entries and every search of a cached matrix (a scan takes
    milliseconds); matrices are read from the file outside the lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, _Cached] = OrderedDict()
        self._filtered: OrderedDict[tuple[Any, ...], IdArray] = OrderedDict()

    @property
    def nbytes(self) -> int:
        """Bytes of the cached matrices."""
        with self._lock:
            return sum(entry.index.nbytes for entry in self._entries.values())

    def search(
        self, seq: int, stamp: int, query: Vector, top_k: int, among: IdArray | None
    ) -> list[tuple[int, float]] | None:
        """Top-k of the cached matrix, or None when it is absent or older than `stamp`."""
        with self._lock:
            entry = self._entries.get(seq)
            if entry is None or entry.stamp < stamp:
                return None
            self._entries.move_to_end(seq)
            return entry.index.search(query, top_k, among)

    def replace(self, seq: int, stamp: int, index: VectorIndex) -> None:
        """Keep a matrix just read in place of a cached one found stale."""
        with self._lock:
            entry = self._entries.get(seq)
            if entry is None or entry.stamp <= stamp:
                self._entries[seq] = _Cached(stamp, index)
            self._entries.move_to_end(seq)
            self._evict(keep=seq)

    def apply(self, seq: int, before: int, after: int, changes: Sequence[Change]) -> None:
        """Bring a cached matrix up to date with a commit that moved its stamp from `before` to
        `after`; a matrix that was not current before the commit is dropped instead."""
        with self._lock:
            self._drop_filtered(seq)
            entry = self._entries.get(seq)
            if entry is None or (entry.stamp == after and not changes):
                return
            if entry.stamp != before:
                if entry.stamp != after:
                    del self._entries[seq]
                return
            for removed, added, vectors in changes:
                entry.index.remove(removed)
                entry.index.add(added, vectors)
            entry.stamp = after
            self._evict(keep=seq)

    def forget(self, seq: int) -> None:
        with self._lock:
            self._entries.pop(seq, None)
            self._drop_filtered(seq)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._filtered.clear()

    def filtered(self, key: tuple[Any, ...]) -> IdArray | None:
        with self._lock:
            return self._filtered.get(key)

    def put_filtered(self, key: tuple[Any, ...], seqs: IdArray) -> None:
        with self._lock:
            self._filtered[key] = seqs
            while len(self._filtered) > _FILTER_CACHE_SIZE:
                self._filtered.popitem(last=False)

    def _drop_filtered(self, seq: int) -> None:
        for key in [key for key in self._filtered if key[0] == seq]:
            del self._filtered[key]

    def _evict(self, keep: int) -> None:
        total = sum(entry.index.nbytes for entry in self._entries.values())
        for seq in list(self._entries):
            if total <= self.max_bytes:
                break
            if seq != keep:
                total -= self._entries.pop(seq).index.nbytes
        if total > self.max_bytes:  # the one in use is larger than the budget: not kept
            self._entries.pop(keep, None)
