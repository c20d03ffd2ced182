from ragbridge.embeddings.names import MINILM, guess_multilingual, is_multilingual, same_model


def test_same_model_ignores_case_and_organisation_prefix() -> None:
    assert same_model("all-MiniLM-L6-v2", MINILM)
    assert same_model("sentence-transformers/all-MiniLM-L6-v2", MINILM)
    assert same_model("ALL-minilm-l6-v2", MINILM)
    assert not same_model("all-MiniLM-L12-v2", MINILM)
    assert not same_model("", MINILM)
    assert not same_model("text-embedding-3-small", MINILM)


def test_english_only_families_are_not_multilingual() -> None:
    assert not guess_multilingual(MINILM)
    assert not guess_multilingual("sentence-transformers/all-mpnet-base-v2")
    assert not guess_multilingual("BAAI/bge-small-en-v1.5")
    assert not guess_multilingual("bge-base-en")


def test_other_models_are_assumed_multilingual() -> None:
    assert guess_multilingual("text-embedding-3-small")
    assert guess_multilingual("intfloat/multilingual-e5-small")
    assert guess_multilingual("paraphrase-multilingual-MiniLM-L12-v2")
    assert guess_multilingual("bge-m3")


def test_configured_value_wins_over_the_guess() -> None:
    assert is_multilingual(MINILM, True)
    assert not is_multilingual("bge-m3", False)
    assert is_multilingual("bge-m3", None)
