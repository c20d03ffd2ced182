"""The console's words in English and Korean (`messages.toml`), and a request's language."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fastapi import Request

LANG_COOKIE = "rb_lang"
LANGUAGES = ("en", "ko")

STRINGS: dict[str, list[str]] = tomllib.loads(
    (Path(__file__).parent / "messages.toml").read_text(encoding="utf-8")
)
"""Key → its text in each of `LANGUAGES`, from the catalogue beside the templates."""


def pick_language(request: Request) -> str:
    """`ko` or `en`: the cookie, else the best `Accept-Language` match, else `en`."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.partition(";")
        weight = params.strip()
        try:
            quality = float(weight[2:]) if weight.startswith("q=") else 1.0
        except ValueError:
            quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else "en"


class Translator:
    """`t("key", what=...)`: the string in one language, formatted."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._index = LANGUAGES.index(language)

    def __call__(self, key: str, **values: object) -> str:
        texts = STRINGS.get(key)
        text = texts[self._index] if texts else key
        return text.format(**values) if values else text
