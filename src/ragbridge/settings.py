"""Every option ragbridge has: an env var `RAGBRIDGE_*`, a default and a one-line doc each.
Precedence, strongest first: CLI flags (keyword arguments), the environment, `.env`, defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RetrievalMode = Literal["hybrid", "dense", "keyword"]
RetrievalFusion = Literal["relative", "rrf"]


class Settings(BaseSettings):
    """ragbridge configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RAGBRIDGE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- server ---------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address to bind `ragbridge serve` to.")
    port: int = Field(8000, description="Port to bind `ragbridge serve` to.")
    data_dir: Path = Field(Path("data"), description="Directory of the embedded store.")
    api_key: SecretStr | None = Field(
        None, description="Admin API key. Unset means no auth, allowed only on loopback."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Allowed CORS origins, JSON list: ["https://a.b"].'
    )
    max_request_bytes: int = Field(8 * 1024 * 1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(50 * 1024 * 1024, description="Largest uploaded document.")
    max_messages: int = Field(1000, description="Most messages accepted in one chat request.")
    shutdown_timeout: float = Field(30.0, description="Seconds in-flight streams get on shutdown.")
    rate_limit_window: float = Field(
        60.0, description="Seconds a key's rpm/tpm budget spans; keep 60 except in tests."
    )
    sample_collection: bool = Field(
        True, description="On an empty data dir, ingest the bundled docs/ into `sample`."
    )

    # --- exposure and slow clients (issue 16) -----------------------------------------------
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names served (comma list or JSON, * = any); default: loopback "
        "names when bound to loopback, else any.",
    )
    metrics_key: SecretStr | None = Field(
        None, description="Bearer key /metrics requires (the admin key works too); unset = open."
    )
    header_timeout: float = Field(
        10.0, description="Seconds a client gets to send a request's headers (slowloris guard)."
    )
    idle_timeout: int = Field(
        5, description="Seconds an idle keep-alive connection stays open between requests."
    )
    bootstrap_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description='Non-admin keys made at start, JSON {"open-webui": "rb-…"} (hashes kept).',
    )

    # --- logging --------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_json: bool | None = Field(None, description="JSON log lines; default: when not a TTY.")
    log_user_text: bool = Field(False, description="Include user messages and queries in logs.")

    # --- upstream LLM ---------------------------------------------------------------------
    upstream_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL ending in /v1; empty = extractive answers."
    )
    upstream_api_key: SecretStr | None = Field(None, description="Bearer key for the upstream.")
    upstream_model: str | None = Field(
        None, description="Default upstream model for rag/<collection> models."
    )
    upstream_headers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='Extra upstream headers, JSON; "{request.header.X-Name}" copies a header.',
    )
    upstream_connect_timeout: float = Field(5.0, description="Upstream connect timeout, seconds.")
    upstream_read_timeout: float = Field(300.0, description="Upstream read timeout, seconds.")
    upstream_max_retries: int = Field(3, description="Retries before the first byte is sent.")
    upstream_retry_base_delay: float = Field(0.5, description="First retry delay, seconds.")
    upstream_retry_max_delay: float = Field(8.0, description="Longest retry delay, seconds.")
    upstream_models_ttl: float = Field(
        30.0, description="Seconds the upstream model list is cached."
    )
    upstream_context_tokens: int = Field(
        8192, description="Upstream context window, tokens; retrieved context is trimmed to fit."
    )
    keepalive_interval: float = Field(
        10.0, description="Seconds between SSE keep-alive comments while waiting upstream."
    )

    # --- local LLM (llama.cpp in-process; the `local-llm` extra, see docs/local-llm.md) -----
    local_model: Path | None = Field(
        None, description="GGUF model run in-process by llama.cpp, served under its file name."
    )
    local_threads: int | None = Field(
        None, description="CPU threads for the local model; default: llama.cpp's (half the cores)."
    )
    local_context_tokens: int = Field(
        4096, ge=256, description="Local model context window (n_ctx); RAG passages fit in it."
    )
    local_gpu_layers: int = Field(
        0, ge=-1, description="Layers offloaded to a GPU (n_gpu_layers, -1 = all) in a GPU build."
    )
    local_queue_size: int = Field(
        8, ge=0, description="Requests waiting behind the one the local model runs; more get 429."
    )
    local_task_max_tokens: int = Field(
        64, ge=8, description="Most tokens the local model writes for an Open WebUI task."
    )

    # --- embeddings -----------------------------------------------------------------------
    embedding_model: str = Field(
        "universal-sentence-encoder-multilingual",
        description="Embedding model name (local, or the remote model id); see docs/embeddings.md.",
    )
    embedding_base_url: str | None = Field(
        None, description="OpenAI-compatible embeddings base URL (…/v1); unset = local model."
    )
    embedding_api_key: SecretStr | None = Field(None, description="Bearer key for embeddings.")
    embedding_batch_size: int = Field(64, description="Texts per embedding batch.")
    embedding_multilingual: bool | None = Field(
        None, description="Model handles non-English text; default: guessed from the model name."
    )

    # --- Korean-first retrieval (issue 9) --------------------------------------------------
    embed_unreadable: bool = Field(
        False,
        description="Embed chunks an English-only model cannot read (non-Latin text); "
        "off: they are keyword-searched only, no vector is computed.",
    )

    # --- ingest ---------------------------------------------------------------------------
    chunk_size: int = Field(256, description="Chunk size in embedding-model tokens.")
    chunk_overlap: int = Field(32, description="Overlap between chunks in tokens.")
    ingest_workers: int = Field(2, description="Files loaded and split concurrently.")

    # --- retrieval ------------------------------------------------------------------------
    retrieval_mode: RetrievalMode = Field("hybrid", description="hybrid, dense or keyword.")
    top_k: int = Field(5, description="Passages given to the model.")
    score_threshold: float = Field(0.0, description="Drop passages scoring below this.")
    retrieval_fusion: RetrievalFusion = Field(
        "relative", description="Hybrid fusion: relative (score-weighted) or rrf (rank-based)."
    )
    rerank_base_url: str | None = Field(None, description="Rerank endpoint base URL (…/v1).")
    rerank_model: str | None = Field(None, description="Rerank model id, or a local cross-encoder.")
    rerank_api_key: SecretStr | None = Field(None, description="Bearer key for the reranker.")

    # --- relevance floor and fusion weight per embedder (issue 9) ---------------------------
    retrieval_min_similarity: float | None = Field(
        None,
        description="Cosine below which a passage only dense search found is not relevant; "
        "unset: the embedder's measured floor (0.15 for the default USE, none if unmeasured).",
    )
    retrieval_dense_weight: float | None = Field(
        None,
        description="Dense weight in hybrid fusion (keyword 1.0); unset: the embedder's measured "
        "weight (0.5 for the default USE, else 1.0).",
    )

    # --- prompts --------------------------------------------------------------------------
    prompt_template: str | None = Field(
        None, description="RAG system prompt with {context}; default picks English or Korean."
    )

    # --- caching --------------------------------------------------------------------------
    cache_ttl: float = Field(300.0, description="Seconds cached retrievals and answers live.")
    cache_max_items: int = Field(2048, description="Entries kept by the in-process cache.")
    response_cache: bool = Field(
        False, description="Cache identical temperature-0 completions (opt-in)."
    )

    # --- web console (issue 12) ---------------------------------------------------------------
    console: bool = Field(
        True, description="Serve the web console at / (collections, search, chat, keys, status)."
    )

    # --- scale-out ------------------------------------------------------------------------
    database_url: str | None = Field(
        None, description="postgresql://… selects the PostgreSQL store; unset = embedded SQLite."
    )
    redis_url: str | None = Field(
        None, description="redis://… shares rate limits and caches across replicas."
    )

    # --- PostgreSQL outages (issue 16) ----------------------------------------------------------
    database_wait_timeout: float = Field(
        5.0, gt=0, description="Seconds a request waits for a PostgreSQL connection, then 503."
    )

    # --- hostile input and bounded memory (issue 16) ----------------------------------------
    ingest_max_records: int = Field(
        100_000, description="Most records (JSON items, JSONL lines, CSV rows) one file may hold."
    )
    ingest_max_record_bytes: int = Field(
        1024 * 1024, description="Largest single record (JSON item, JSONL line, CSV row), bytes."
    )
    ingest_max_json_depth: int = Field(64, description="Deepest nesting a JSON file may have.")
    ingest_max_pdf_pages: int = Field(5000, description="Most pages a PDF may have.")
    ingest_max_unzipped_bytes: int = Field(
        256 * 1024 * 1024, description="Largest total a DOCX (zip) may inflate to, bytes."
    )
    ingest_max_zip_ratio: int = Field(
        200, description="Largest inflate ratio of one DOCX (zip) member (bomb guard)."
    )
    retrieval_query_max_chars: int = Field(
        2000, description="The retrieval query (last user message) is cut to this many chars."
    )
    retrieval_query_max_terms: int = Field(
        64, description="Most distinct keyword terms one retrieval query searches for."
    )
    vector_cache_bytes: int = Field(
        1024 * 1024 * 1024, description="Memory for cached collection vectors (LRU), bytes."
    )
    cache_max_bytes: int = Field(
        64 * 1024 * 1024, description="Memory the in-process cache (retrievals, answers) may use."
    )

    # --- citations and tools (Open WebUI Pipe, tool server, MCP) ----------------------------
    public_url: str | None = Field(
        None,
        description="Base URL clients reach ragbridge at, for citation links; unset = the "
        "request's own.",
    )

    # --- approximate search in the embedded store (issue 15) ------------------------------
    ann_enabled: bool = Field(True, description="HNSW index (faiss) for large SQLite collections.")
    ann_min_chunks: int = Field(
        20_000, description="Collections with fewer chunks are searched exactly."
    )
    ann_exact_filter_limit: int = Field(
        10_000, description="Filters matching at most this many chunks are searched exactly."
    )
    ann_ef_search: int = Field(
        64, description="HNSW efSearch up to 125k rows (grows in proportion above, at most 1024)."
    )
    warm_start: bool = Field(
        True, description="Load the embedder and open indexes in the background at start."
    )

    @field_validator("upstream_base_url", "embedding_base_url", "rerank_base_url", "public_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value and value.strip() else None

    @field_validator(
        "api_key",
        "upstream_api_key",
        "embedding_api_key",
        "rerank_api_key",
        "metrics_key",
        "local_model",
        mode="before",
    )
    @classmethod
    def _blank_key_or_path_is_none(cls, value: Any) -> Any:
        """An empty key or path (as Compose passes an unset variable) means none: no `Bearer `."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: Any) -> Any:
        """A JSON list or a comma-separated list (`*` alone is valid too)."""
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("bootstrap_keys", "upstream_headers", mode="before")
    @classmethod
    def _parse_json_map(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError('valid JSON, e.g. {"name": "value"}') from None

    @property
    def upstream_enabled(self) -> bool:
        """Whether an upstream LLM is configured (else answers are extractive)."""
        return self.upstream_base_url is not None
