"""One collection's faiss HNSW graph on disk beside the SQLite file, and the job that syncs it.

A saved `Graph` is immutable: later writes live in an exact delta and a dead-id set until a job
folds them into a new generation, `<db>.ann/c<seq>-<gen>.faiss` + `.npz` (the `.npz`, written
last, marks it finished). faiss was chosen by measurement (docs/performance.md)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragbridge.store.vector_index import FloatArray, IdArray, VectorIndex, best, positions, scan

_READ_BATCH = 20_000
NO_IDS = np.empty(0, dtype=np.int64)


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

    def merge_at(self, graph_size: int) -> float:
        """The delta size past which it is folded into the graph."""
        return max(self.merge_min, self.merge_fraction * graph_size)


@dataclass
class Graph:
    """A saved HNSW graph: faiss index keyed by row id, its sorted ids, high-water mark."""

    index: Any  # faiss.IndexIDMap
    ids: IdArray
    hwm: int
    gen: int
    dead: IdArray

    def __len__(self) -> int:
        return len(self.ids)

    def holds(self, ids: IdArray) -> IdArray:
        """The given ids that are in the graph."""
        return self.ids[positions(self.ids, ids)]


@dataclass
class Synced:
    """What a job found in the file: `exact` (too few rows for a graph), `ready` (a graph, the
    delta of rows above it and its dead rows) or `failed`."""

    kind: str
    count: int
    max_seq: int
    graph: Graph | None = None
    delta: VectorIndex | None = None
    dead: IdArray = field(default_factory=lambda: NO_IDS)


def faiss_module() -> Any:
    """faiss, imported on first use (a slow import), untyped (its stubs lack some of it)."""
    import faiss

    return faiss


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


def exact_among(
    conn: sqlite3.Connection, query: FloatArray, top_k: int, among: IdArray
) -> list[tuple[int, float]]:
    """Exact top-k over the rows `among`, their vectors read from SQLite (selective filters)."""
    rows: list[Any] = []
    for start in range(0, len(among), 500):  # 500 ids a query: faster than one json_each
        batch = among[start : start + 500].tolist()
        statement = f"SELECT seq, vector FROM vectors WHERE seq IN ({', '.join('?' * len(batch))})"
        rows += conn.execute(statement, batch).fetchall()
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
    scores = scan(matrix.reshape(len(rows), len(query)), query)
    return [(int(rows[i][0]), float(scores[i])) for i in best(scores, top_k)]


class GraphFiles:
    """The graphs of one store, `<db>.ann/c<collection seq>-<generation>.{faiss,npz}`, and the
    job that syncs one with the SQLite file."""

    def __init__(self, db_path: Path, config: AnnConfig) -> None:
        self.db_path = db_path
        self.folder = db_path.with_name(db_path.name + ".ann")
        self.config = config
        self.closing = threading.Event()
        """Set when the store closes: a build in progress gives up."""

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
        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
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

    def sync(self, seq: int, dimension: int) -> Synced:
        """Read the file in one read transaction on a connection of its own, check the saved
        graph against it (rows deleted or added since: a crash, another process), and build,
        merge or rebuild as needed."""
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=30.0)
        try:
            graph = self.load(seq)
            conn.execute("BEGIN")
            count, max_seq = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM vectors WHERE collection_seq = ?",
                (seq,),
            ).fetchone()
            if count < self.config.min_chunks:
                if graph is not None:
                    self.remove(seq)
                return Synced("exact", count, max_seq)
            dead = NO_IDS if graph is None else self._dead(conn, seq, graph)
            if graph is not None and len(dead) > self.config.rebuild_fraction * len(graph):
                graph, dead = None, NO_IDS
            if graph is None:
                graph = self._write(conn, seq, dimension, None, dead)
            delta = VectorIndex(dimension)
            for ids, vectors in read_vectors(conn, seq, dimension, graph.hwm):
                delta.add(ids, vectors)
            if len(delta) > self.config.merge_at(len(graph)):
                graph = self._write(conn, seq, dimension, graph, dead)
                delta = VectorIndex(dimension)
            return Synced("ready", count, max_seq, graph, delta, dead)
        finally:
            conn.close()

    def _dead(self, conn: sqlite3.Connection, seq: int, graph: Graph) -> IdArray:
        """Graph rows no longer in the file: the saved list if count and id sum agree."""
        live, total = conn.execute(
            "SELECT COUNT(*), TOTAL(seq) FROM vectors WHERE collection_seq = ? AND seq <= ?",
            (seq, graph.hwm),
        ).fetchone()
        expected = len(graph.ids) - len(graph.dead)
        if live == expected and total == float(graph.ids.sum() - graph.dead.sum()):
            return graph.dead
        rows = conn.execute(
            "SELECT seq FROM vectors WHERE collection_seq = ? AND seq <= ?", (seq, graph.hwm)
        ).fetchall()
        present = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        dead: IdArray = np.setdiff1d(graph.ids, present)
        return dead

    def _write(
        self, conn: sqlite3.Connection, seq: int, dimension: int, base: Graph | None, dead: IdArray
    ) -> Graph:
        """A new generation: a copy of `base` plus the rows above its high-water mark, or every
        row when there is no base; saved, then opened memory-mapped."""
        faiss = faiss_module()
        if base is None:
            hnsw = faiss.IndexHNSWFlat(dimension, self.config.m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.config.ef_construction
            index, parts, above = faiss.IndexIDMap(hnsw), [], 0
        else:
            copy = self.load(seq, mmap=False)
            if copy is None or copy.gen != base.gen:
                raise RuntimeError("saved graph changed during a merge")
            index, parts, above = copy.index, [base.ids], base.hwm
        faiss.omp_set_num_threads(self.config.build_threads)  # for this thread only
        try:
            for ids, vectors in read_vectors(conn, seq, dimension, above):
                if self.closing.is_set():
                    raise RuntimeError("store closed during an index build")
                index.add_with_ids(vectors, ids)
                parts.append(ids)
        finally:
            faiss.omp_set_num_threads(1)
        ids = np.concatenate(parts) if parts else NO_IDS
        gens = self.generations(seq)
        gen = gens[0] + 1 if gens else 1
        graph = Graph(index, ids, int(ids[-1]) if len(ids) else 0, gen, dead)
        self.save(seq, graph)
        return self.load(seq) or graph


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
