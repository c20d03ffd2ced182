"""ragbridge: a self-hosted RAG server with an OpenAI-compatible API.

The Python API (`ragbridge.open`, `ragbridge.Ragbridge`) lives in `ragbridge.bridge`; it is
imported on first use, so `import ragbridge.settings` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Answer", "Ragbridge", "__version__", "open"]

if TYPE_CHECKING:
    from ragbridge.bridge import Answer, Ragbridge, open


def __getattr__(name: str) -> Any:
    if name in ("Answer", "Ragbridge", "open"):
        from ragbridge import bridge

        return getattr(bridge, name)
    raise AttributeError(f"module 'ragbridge' has no attribute {name!r}")
