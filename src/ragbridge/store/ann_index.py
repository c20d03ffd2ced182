"""One collection's approximate index: a faiss HNSW graph persisted beside the SQLite file.

A `Graph` is immutable once saved: later writes live in an exact in-memory `VectorIndex`
(the delta, row ids above the graph's high-water mark) and a set of deleted row ids (the dead),
until `AnnIndexes` folds them into a new graph file. Files are `<db>.ann/c<seq>-<gen>.faiss`
and `.npz` (sorted row ids, dead ids, high-water mark); the `.npz` is written last, so a
graph without one was never finished. faiss was chosen by measurement (docs/performance.md).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragbridge.store.vector_index import FloatArray, IdArray, VectorIndex, scan

_READ_BATCH = 20_000


@dataclass(frozen=True)
class AnnConfig:
    """When and how the embedded store searches approximately (settings `ann_*`)."""

    enabled: bool = True
    min_chunks: int = 20_000
    """Collections with fewer vectors are searched exactly (no graph is built)."""
    exact_filter_limit: int = 10_000
    """A metadata filter matching at most this many chunks is searched exactly."""
    ef_search: int = 64
    m: int = 32
    ef_construction: int = 64
    merge_min: int = 20_000
    merge_fraction: float = 0.05
    """The delta is folded into the graph when larger than both `merge_min` and this share."""
    rebuild_fraction: float = 0.2
    """The graph is rebuilt from SQLite when this share of it is deleted."""
    build_threads: int = 2
    open_wait: float = 10.0
    """Seconds a search waits for a graph file being opened before searching exactly."""


@dataclass
class Graph:
    """A saved HNSW graph: faiss index keyed by row id, its sorted ids, high-water mark."""

    index: Any  # faiss.IndexIDMap
    ids: IdArray
    hwm: int
    gen: int
    dead: IdArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def holds(self, ids: IdArray) -> IdArray:
        """The given ids that are in the graph."""
        slots = np.searchsorted(self.ids, ids)
        slots = np.minimum(slots, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0:
            return np.empty(0, dtype=np.int64)
        found: IdArray = ids[self.ids[slots] == ids]
        return found


def faiss_module() -> Any:
    """faiss, or None when it is not installed (then every search is exact)."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a core dependency
        return None
    return faiss


def new_index(dimension: int, config: AnnConfig) -> Any:
    faiss = faiss_module()
    hnsw = faiss.IndexHNSWFlat(dimension, config.m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = config.ef_construction
    return faiss.IndexIDMap(hnsw)


def add(index: Any, ids: IdArray, vectors: FloatArray, threads: int) -> None:
    """Add rows to a graph using `threads` OpenMP threads (set for this thread only)."""
    faiss = faiss_module()
    faiss.omp_set_num_threads(threads)
    try:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    finally:
        faiss.omp_set_num_threads(1)


def read_vectors(
    conn: sqlite3.Connection, collection_seq: int, dimension: int, above: int = 0
) -> Iterator[tuple[IdArray, FloatArray]]:
    """The collection's (row ids, vectors) with row id > `above`, in id order, in batches."""
    cursor = conn.execute(
        "SELECT seq, vector FROM vectors WHERE collection_seq = ? AND seq > ? ORDER BY seq",
        (collection_seq, above),
    )
    while rows := cursor.fetchmany(_READ_BATCH):
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        blob = b"".join(row[1] for row in rows)
        yield ids, np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dimension)


def read_delta(
    conn: sqlite3.Connection, collection_seq: int, dimension: int, above: int
) -> VectorIndex:
    delta = VectorIndex(dimension)
    for ids, vectors in read_vectors(conn, collection_seq, dimension, above):
        delta.add(ids, vectors)
    return delta


def exact_among(
    conn: sqlite3.Connection, query: FloatArray, top_k: int, among: IdArray
) -> list[tuple[int, float]]:
    """Exact top-k over the rows `among`, their vectors read from SQLite (selective filters)."""
    if len(among) == 0 or top_k <= 0:
        return []
    ids: list[int] = []
    blobs: list[bytes] = []
    for start in range(0, len(among), 500):
        batch = among[start : start + 500].tolist()
        rows = conn.execute(
            f"SELECT seq, vector FROM vectors WHERE seq IN ({', '.join('?' * len(batch))})",
            batch,
        ).fetchall()
        ids.extend(row[0] for row in rows)
        blobs.extend(row[1] for row in rows)
    if not ids:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
    scores = scan(matrix, query)
    k = min(top_k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in best]


class GraphFiles:
    """The graph files of one store: `<db>.ann/c<collection seq>-<generation>.{faiss,npz}`."""

    def __init__(self, db_path: Path) -> None:
        self.folder = db_path.with_name(db_path.name + ".ann")

    def _stem(self, collection_seq: int, gen: int) -> Path:
        return self.folder / f"c{collection_seq}-{gen}"

    def generations(self, collection_seq: int) -> list[int]:
        """Finished generations (both files present), newest first."""
        if not self.folder.is_dir():
            return []
        gens = []
        for path in self.folder.glob(f"c{collection_seq}-*.npz"):
            gen = path.stem.rsplit("-", 1)[1]
            if gen.isdigit() and path.with_suffix(".faiss").exists():
                gens.append(int(gen))
        return sorted(gens, reverse=True)

    def load(self, collection_seq: int, *, mmap: bool = True) -> Graph | None:
        """The newest finished graph (memory-mapped unless `mmap` is false, for a copy to add
        to); None if there is none or it is unreadable."""
        faiss = faiss_module()
        # MMAP_IFC maps the vectors in place (MMAP alone still copies them): 40 vs 270 ms at 20k
        in_place = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
        flags = in_place if mmap else 0
        for gen in self.generations(collection_seq):
            stem = self._stem(collection_seq, gen)
            try:
                with np.load(stem.with_suffix(".npz")) as meta:
                    ids, dead, hwm = meta["ids"], meta["dead"], int(meta["hwm"])
                index = faiss.read_index(str(stem.with_suffix(".faiss")), flags)
            except (OSError, ValueError, KeyError, RuntimeError):
                continue  # a damaged file: try the generation before, else rebuild
            if index.ntotal != len(ids):
                continue
            return Graph(index, ids.astype(np.int64), hwm, gen, dead.astype(np.int64))
        return None

    def save(self, collection_seq: int, graph: Graph) -> None:
        """Write `graph` as generation `graph.gen` (index first, then the metadata that
        marks it finished), then remove older generations."""
        faiss = faiss_module()
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self._stem(collection_seq, graph.gen)
        tmp_index = stem.with_suffix(".faiss.tmp")
        faiss.write_index(graph.index, str(tmp_index))
        _fsync(tmp_index)
        os.replace(tmp_index, stem.with_suffix(".faiss"))
        tmp_meta = stem.with_suffix(".tmp.npz")
        np.savez(tmp_meta, ids=graph.ids, dead=graph.dead, hwm=np.int64(graph.hwm))
        _fsync(tmp_meta)
        os.replace(tmp_meta, stem.with_suffix(".npz"))
        for gen in self.generations(collection_seq)[1:]:
            self.remove(collection_seq, gen)

    def remove(self, collection_seq: int, gen: int | None = None) -> None:
        """Delete one generation's files, or all of the collection's."""
        gens = self.generations(collection_seq) if gen is None else [gen]
        for old in gens:
            for suffix in (".npz", ".faiss"):
                self._stem(collection_seq, old).with_suffix(suffix).unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
