"""Which script text is in (Hangul, CJK), and the one Korean analyser the process shares."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Hangul syllables, jamo and compatibility jamo.
HANGUL_CHARS = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
# Ideographs (CJK unified + extension A + compatibility) and kana: no spaces between words.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff"
HANGUL = re.compile(f"[{HANGUL_CHARS}]")

_kiwi: Kiwi | None = None
_kiwi_lock = threading.Lock()


def kiwi() -> Kiwi:
    """The process-wide Kiwi analyser, built on first use (a slow import and ~1 s to build).

    Kiwi's analysis of a built model is reentrant, so threads share the one instance. Without
    the multi-word and typo dictionaries it costs 1.4 s of CPU per process instead of 3.2 s
    (measured), and analyses every Korean line of docs/ko, tests/ and bench/data the same.
    """
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                _kiwi = Kiwi(load_typo_dict=False, load_multi_dict=False)
    return _kiwi
