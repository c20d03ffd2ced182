"""Exact cosine search over an in-memory float32 matrix keyed by the store's ever-growing row
ids (sorted, found by binary search); deletes leave tombstones, compacted at a quarter dead."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def normalise(vectors: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def scan(matrix: FloatArray, query: FloatArray) -> FloatArray:
    """Dot product of every row with `query`, on the calling thread.

    numpy's own einsum loop, not BLAS: OpenBLAS splits a matrix-vector product over threads,
    and on a busy machine (the embedding model's threads next door) waiting for them cost
    10-30x at 10k rows; measured in `bench/search_latency.py`.
    """
    scores: FloatArray = np.einsum("ij,j->i", matrix, query)
    return scores


def best(scores: FloatArray, top_k: int) -> npt.NDArray[np.intp]:
    """Positions of the `top_k` highest scores, best first (ties in position order)."""
    k = min(top_k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    ordered: npt.NDArray[np.intp] = top[np.argsort(-scores[top], kind="stable")]
    return ordered


def positions(sorted_ids: IdArray, ids: IdArray) -> npt.NDArray[np.intp]:
    """Positions in `sorted_ids` of the `ids` it holds (the others dropped)."""
    slots = np.searchsorted(sorted_ids, ids)
    inside = slots < len(sorted_ids)
    found: npt.NDArray[np.intp] = slots[inside][sorted_ids[slots[inside]] == ids[inside]]
    return found


class VectorIndex:
    """One collection's vectors: append, delete by row id, top-k by dot product."""

    def __init__(self, dimension: int, capacity: int = 1024) -> None:
        self.dimension = dimension
        self._ids: IdArray = np.empty(capacity, dtype=np.int64)
        self._matrix: FloatArray = np.empty((capacity, dimension), dtype=np.float32)
        self._live = np.zeros(capacity, dtype=bool)
        self._size = 0
        self._dead = 0

    @property
    def nbytes(self) -> int:
        """Memory the index holds (its capacity, not only the live rows)."""
        return int(self._ids.nbytes + self._matrix.nbytes + self._live.nbytes)

    def __len__(self) -> int:
        """Live rows."""
        return self._size - self._dead

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Append rows; `ids` must be larger than every id already present."""
        count = len(ids)
        if count == 0:
            return
        if self._size and ids[0] <= self._ids[self._size - 1]:
            raise ValueError("row ids must grow")
        end = self._size + count
        if end > len(self._ids):  # grow by doubling
            capacity = max(end, len(self._ids) * 2)
            self._ids = np.resize(self._ids, capacity)
            self._live = np.resize(self._live, capacity)  # past `_size`: never read before set
            matrix = np.empty((capacity, self.dimension), dtype=np.float32)
            matrix[: self._size] = self._matrix[: self._size]
            self._matrix = matrix
        self._ids[self._size : end] = ids
        self._matrix[self._size : end] = vectors
        self._live[self._size : end] = True
        self._size = end

    def remove(self, ids: IdArray) -> None:
        """Tombstone rows by id; unknown ids are ignored."""
        slots = positions(self._ids[: self._size], ids)
        self._dead += int(np.count_nonzero(self._live[slots]))
        self._live[slots] = False
        if self._dead > 1024 and self._dead * 4 > self._size:
            self._compact()

    def search(
        self, query: FloatArray, top_k: int, among: IdArray | None = None
    ) -> list[tuple[int, float]]:
        """The `top_k` (row id, cosine) pairs best first, optionally only among row ids `among`."""
        if top_k <= 0 or len(self) == 0:
            return []
        if among is None:
            scores = scan(self._matrix[: self._size], query)
            if self._dead:
                scores[~self._live[: self._size]] = -np.inf
            candidates: IdArray = self._ids[: self._size]
        else:
            slots = positions(self._ids[: self._size], among)
            slots = slots[self._live[slots]]
            scores = scan(self._matrix[slots], query)
            candidates = self._ids[slots]
        top = best(scores, top_k)
        return [(int(candidates[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def _compact(self) -> None:
        keep = np.flatnonzero(self._live[: self._size])
        count = len(keep)
        self._ids[:count] = self._ids[keep]
        self._matrix[:count] = self._matrix[keep]
        self._live[:count] = True
        self._size = count
        self._dead = 0
