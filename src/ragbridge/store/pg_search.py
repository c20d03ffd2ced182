"""The PostgreSQL store's search SQL: metadata filters, dense (HNSW) and keyword (BM25).

The collection id, dimension and limit are inlined as literals, so the planner matches the
collection's partial HNSW index even in a plan psycopg prepared generically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ragbridge.store.base import filter_items

BM25_K1 = 1.2
BM25_B = 0.75

_CHUNK_COLUMNS = sql.SQL("c.id, c.document_id, c.position, c.text, c.metadata")


def filter_sql(filters: Mapping[str, Any] | None) -> tuple[sql.Composable, list[Any]]:
    """`AND`-ed jsonb containment tests on chunk metadata (see `filter_items`)."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for key, options in filter_items(filters):
        tests = [sql.SQL("c.metadata @> %s")] * len(options) or [sql.SQL("false")]
        params.extend(Jsonb({key: option}) for option in options)
        parts.append(sql.SQL(" AND (") + sql.SQL(" OR ").join(tests) + sql.SQL(")"))
    return sql.Composed(parts), params


def vector_type(dimension: int) -> sql.Composable:
    """`vector(DIM)`, the type a collection's embeddings are cast to (and indexed as)."""
    return sql.SQL("vector({})").format(sql.Literal(dimension))


def hnsw_index_name(collection_id: int) -> sql.Identifier:
    """The partial HNSW index of one collection."""
    return sql.Identifier(f"chunks_embedding_c{collection_id}")


def create_hnsw_index(collection_id: int, dimension: int) -> sql.Composed:
    """DDL for a collection's partial HNSW index on cosine distance."""
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw "
        "((embedding::{vtype}) vector_cosine_ops) WHERE collection_id = {cid}"
    ).format(
        name=hnsw_index_name(collection_id),
        vtype=vector_type(dimension),
        cid=sql.Literal(collection_id),
    )


EF_SEARCH = 200
"""`hnsw.ef_search` for an unfiltered search: candidates the HNSW walk keeps. Measured at 1M
chunks (docs/scaling.md): recall@10 0.66 at pgvector's default 40, 0.89 at 200, 0.95 at 1,000."""
FILTERED_EF_PER_RESULT = 40
"""Per requested result when filtering: pgvector 0.6 filters after the walk, so a filter keeping
10 % of the chunks needs ~10× the candidates; too few and the exact fallback runs."""


def ef_search(top_k: int, filtered: bool) -> int:
    """`hnsw.ef_search` for one query (pgvector accepts at most 1,000)."""
    return min(1000, top_k * FILTERED_EF_PER_RESULT if filtered else max(EF_SEARCH, top_k))


def dense_query(
    collection_id: int, dimension: int, top_k: int, where: sql.Composable, *, exact: bool = False
) -> sql.Composed:
    """Nearest chunks by cosine distance; params: the query vector, then the filter params.

    `exact` orders by the score instead of the distance, which the HNSW index cannot serve: a
    different statement, so a plan psycopg prepared for one is never reused for the other
    (a prepared plan ignores later `SET enable_indexscan`)."""
    order = "score DESC" if exact else "(c.embedding::{vtype}) <=> q.v"
    return sql.SQL(
        "WITH q AS (SELECT %s::{vtype} AS v) "
        "SELECT {cols}, 1 - ((c.embedding::{vtype}) <=> q.v) AS score "
        "FROM chunks c, q WHERE c.collection_id = {cid}{where} "
        f"ORDER BY {order} LIMIT {{k}}"
    ).format(
        vtype=vector_type(dimension),
        cols=_CHUNK_COLUMNS,
        cid=sql.Literal(collection_id),
        where=where,
        k=sql.Literal(top_k),
    )


def keyword_query(
    collection_id: int,
    chunk_total: int,
    keyword_total: int,
    top_k: int,
    where: sql.Composable,
) -> sql.Composed:
    """Okapi BM25 as FTS5's `bm25()` computes it, over the chunks' `to_tsvector('simple',
    keywords)`: idf = ln((N - df + 0.5) / (df + 0.5)), at least 1e-6, with df counted among the
    chunks matching any term (read once, through the GIN index) before the filter, as FTS5 does;
    tf from the term's positions, lengths from `keyword_count` and the collection's totals.
    Params: the terms text, then the filter params."""
    avgdl = keyword_total / chunk_total if chunk_total and keyword_total else 1.0
    return sql.SQL(
        """
WITH q AS (
    SELECT lexeme,
           ('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''')::tsquery AS tsq
    FROM unnest(to_tsvector('simple', %s))
), hits AS (
    SELECT c.id, c.keyword_count, true{where} AS keep,
           ts_delete(c.tsv, tsvector_to_array(
               ts_delete(c.tsv, (SELECT array_agg(lexeme) FROM q)))) AS matched
    FROM chunks c
    WHERE c.collection_id = {cid}
      AND c.tsv @@ (SELECT string_agg(tsq::text, ' | ')::tsquery FROM q)
), tf AS (
    SELECT h.id, h.keyword_count, h.keep, m.lexeme, cardinality(m.positions) AS tf
    FROM hits h CROSS JOIN LATERAL unnest(h.matched) m
), df AS (
    SELECT lexeme, greatest(ln(greatest(({n} - count(*) + 0.5) / (count(*) + 0.5), 1)), 1e-6) AS idf
    FROM tf GROUP BY lexeme
), top AS (
    SELECT tf.id,
           sum(df.idf * (tf.tf * ({k1} + 1))
               / (tf.tf + {k1} * (1 - {b} + {b} * tf.keyword_count / {avgdl}))) AS score
    FROM tf JOIN df ON df.lexeme = tf.lexeme
    WHERE tf.keep
    GROUP BY tf.id
    ORDER BY score DESC, tf.id
    LIMIT {k}
)
SELECT {cols}, top.score
FROM top JOIN chunks c ON c.collection_id = {cid} AND c.id = top.id
ORDER BY top.score DESC, top.id
"""
    ).format(
        n=sql.Literal(float(chunk_total)),
        cid=sql.Literal(collection_id),
        cols=_CHUNK_COLUMNS,
        where=where,
        k1=sql.Literal(BM25_K1),
        b=sql.Literal(BM25_B),
        avgdl=sql.Literal(avgdl),
        k=sql.Literal(top_k),
    )


def terms_text(terms: Sequence[str]) -> str:
    """The analysed terms as one string for `to_tsvector('simple', ...)`."""
    return " ".join(term for term in terms if term.strip())
