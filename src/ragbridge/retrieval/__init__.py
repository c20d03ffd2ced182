"""Finding passages: language-aware tokens, hybrid fusion, reranking."""
