"""The plugin registry in-process: built-ins come from ragbridge's own entry points, another
distribution's plugins are chosen by the model, scheme or extension they claim, a plugin of a
built-in's name replaces it, and a plugin that is not what its group expects is a clear error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ragbridge import plugins
from ragbridge.embeddings import create_embedder, embedder_plugin
from ragbridge.ingest.loaders import extension_formats, load
from ragbridge.retrieval.rerank import RemoteReranker, create_reranker
from ragbridge.settings import Settings
from ragbridge.store import create_store, store_plugin
from ragbridge.store.sqlite import SqliteStore

# A third party's module: a character-bigram embedder, a word-overlap reranker, a loader that
# takes over `.txt`, a store for `memory://` URLs (the SQLite store in a temporary file).
ACME = """
import hashlib
import tempfile
from pathlib import Path

import numpy as np

from ragbridge.ingest.documents import Section, whole_file
from ragbridge.plugins import EmbedderPlugin, LoaderPlugin, RerankerPlugin, StorePlugin
from ragbridge.store.sqlite import SqliteStore


class BigramEmbedder:
    name = "acme-bigrams"
    dimension = 64
    max_tokens = 512
    multilingual = True

    def count_tokens(self, text):
        return len(text)

    def _one(self, text):
        vector = np.zeros(self.dimension, dtype=np.float32)
        for a, b in zip(text, text[1:]):
            vector[hashlib.sha256((a + b).encode()).digest()[0] % self.dimension] += 1
        return vector / (np.linalg.norm(vector) or 1.0)

    async def embed_documents(self, texts):
        return np.stack([self._one(t) for t in texts])

    async def embed_query(self, text):
        return self._one(text)

    async def close(self):
        pass


class OverlapReranker:
    name = "acme-overlap"
    multilingual = True

    async def rerank(self, query, documents, top_n):
        words = set(query.split())
        scores = [(i, float(len(words & set(d.split())))) for i, d in enumerate(documents)]
        return sorted(scores, key=lambda pair: pair[1], reverse=True)[:top_n]

    async def close(self):
        pass


def read_shouting(data, source, limits):
    return whole_file(source, data, "shouting", [Section(data.decode().upper())])


EMBEDDER = EmbedderPlugin(lambda settings: BigramEmbedder(), models=("acme-bigrams",))
RERANKER = RerankerPlugin(lambda settings: OverlapReranker(), models=("acme-overlap",))
SHOUTING = LoaderPlugin((".txt", ".shout"), read_shouting)
MEMORY = StorePlugin(
    lambda settings: SqliteStore(Path(tempfile.mkdtemp()) / "memory.db"), schemes=("memory",)
)
NOT_A_PLUGIN = read_shouting
"""

ENTRY_POINTS = """
[ragbridge.embedders]
acme = acme_ragbridge:EMBEDDER
[ragbridge.rerankers]
acme = acme_ragbridge:RERANKER
[ragbridge.loaders]
shouting = acme_ragbridge:SHOUTING
[ragbridge.stores]
memory = acme_ragbridge:MEMORY
"""

Install = Callable[[str, str], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """`install(entry_points_txt, module_source)`: a distribution `acme-ragbridge` on sys.path."""

    def make(entry_points: str, source: str) -> None:
        site = tmp_path / "site"
        dist = site / "acme_ragbridge-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: acme-ragbridge\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(entry_points)
        (site / "acme_ragbridge.py").write_text(source)
        monkeypatch.syspath_prepend(str(site))
        plugins.clear_cache()

    yield make
    plugins.clear_cache()


def test_the_built_ins_are_registered_like_any_plugin() -> None:
    assert {"pdf", "docx", "html", "markdown", "text", "json", "jsonl", "csv"} <= set(
        plugins.loaders()
    )
    assert {"remote", "universal-sentence-encoder", "e5", "sentence-transformers"} <= set(
        plugins.embedders()
    )
    assert {"remote", "cross-encoder"} <= set(plugins.rerankers())
    assert {"sqlite", "postgres"} <= set(plugins.stores())
    assert extension_formats()[".pdf"] == "pdf"
    assert extension_formats()[".tsv"] == "csv"


def test_built_in_selection_follows_the_settings(tmp_path: Path) -> None:
    assert embedder_plugin(Settings()) == "universal-sentence-encoder"
    assert embedder_plugin(Settings(embedding_model="intfloat/multilingual-e5-small")) == "e5"
    assert embedder_plugin(Settings(embedding_model="/models/bge")) == "sentence-transformers"
    assert embedder_plugin(Settings(embedding_base_url="http://h/v1")) == "remote"
    assert store_plugin(Settings(database_url=None)) == "sqlite"
    assert store_plugin(Settings(database_url="postgres://u@h/db")) == "postgres"
    assert isinstance(create_store(Settings(data_dir=tmp_path, database_url=None)), SqliteStore)
    with pytest.raises(ValueError, match=r"must start with postgres:// or postgresql://"):
        store_plugin(Settings(database_url="mysql://h/db"))
    reranker = create_reranker(Settings(rerank_base_url="http://h/v1", rerank_model="bge"))
    assert isinstance(reranker, RemoteReranker)


def test_third_party_plugins_are_chosen_by_what_they_claim(install: Install) -> None:
    install(ENTRY_POINTS, ACME)

    settings = Settings(embedding_model="acme-bigrams", rerank_model="acme-overlap")
    assert embedder_plugin(settings) == "acme"
    embedder = create_embedder(settings)
    vectors = asyncio.run(embedder.embed_documents(["연차 휴가는 15일", "출장비 정산"]))
    assert vectors.shape == (2, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)

    reranker = create_reranker(settings)
    assert reranker is not None and reranker.name == "acme-overlap"
    scores = asyncio.run(reranker.rerank("연차 휴가", ["출장비 정산", "연차 휴가 신청"], 2))
    assert scores[0] == (1, 2.0)

    assert store_plugin(Settings(database_url="memory://x")) == "memory"
    with pytest.raises(ValueError, match=r"memory://"):
        store_plugin(Settings(database_url="mysql://h/db"))


def test_a_third_party_loader_takes_an_extension_from_a_built_in(install: Install) -> None:
    install(ENTRY_POINTS, ACME)

    assert extension_formats()[".txt"] == "shouting"
    assert extension_formats()[".shout"] == "shouting"
    assert extension_formats()[".md"] == "markdown"
    (document,) = load(b"quiet please, \xec\x95\x88\xeb\x85\x95", "notes.txt")
    assert (document.format, document.text) == ("shouting", "QUIET PLEASE, 안녕")


def test_a_plugin_named_like_a_built_in_replaces_it(install: Install) -> None:
    install("[ragbridge.loaders]\ntext = acme_ragbridge:SHOUTING\n", ACME)

    (document,) = load(b"hello", "a.txt")
    assert document.text == "HELLO"
    assert plugins.loaders()["text"].read.__module__ == "acme_ragbridge"


def test_a_plugin_of_the_wrong_kind_is_a_clear_error(
    install: Install, caplog: pytest.LogCaptureFixture
) -> None:
    install("[ragbridge.stores]\nbad = acme_ragbridge:NOT_A_PLUGIN\n", ACME)

    caplog.set_level(logging.ERROR, logger="ragbridge.plugins")
    with pytest.raises(plugins.PluginError) as caught:
        plugins.stores()
    expected = (
        "plugin 'bad' (ragbridge.stores, acme_ragbridge:NOT_A_PLUGIN from acme-ragbridge 1.0) "
        "is a function, not a ragbridge.plugins.StorePlugin"
    )
    assert caught.value.message == expected
    assert caught.value.status == 500 and caught.value.code == "plugin_error"
    assert [record.getMessage() for record in caplog.records] == [expected]


def test_an_unregistered_name_says_what_is_registered() -> None:
    with pytest.raises(plugins.PluginError, match=r"no ragbridge.stores plugin named 'qdrant'"):
        plugins.require(plugins.stores(), "ragbridge.stores", "qdrant")


def test_missing_built_ins_say_how_to_register_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout run without `pip install -e .`, or installed before the entry points were."""
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins.clear_cache()
    try:
        with pytest.raises(plugins.PluginError, match=r"built-in ragbridge.loaders are not regis"):
            load(b"text", "a.txt")
    finally:
        plugins.clear_cache()
