"""Domain errors. Layers below `api/` raise these; `api/envelope.py` makes HTTP answers of them."""

from __future__ import annotations


class RagbridgeError(Exception):
    """An error with an HTTP status and an OpenAI error type, safe to show to the client."""

    status = 500
    type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers
        if status is not None:
            self.status = status


class InvalidRequest(RagbridgeError):
    status = 400
    type = "invalid_request_error"


class NotFound(RagbridgeError):
    status = 404
    type = "not_found_error"


def collection_not_found(name: str) -> NotFound:
    """The error for a missing collection, also used for one outside the key's scope."""
    return NotFound(f"Collection '{name}' not found.", param="collection", code="not_found")


class Conflict(RagbridgeError):
    status = 409
    type = "conflict_error"


class PayloadTooLarge(RagbridgeError):
    status = 413
    type = "invalid_request_error"


class UnsupportedMediaType(RagbridgeError):
    status = 415
    type = "invalid_request_error"


class Unauthorized(RagbridgeError):
    status = 401
    type = "authentication_error"


class Forbidden(RagbridgeError):
    status = 403
    type = "permission_error"


class RateLimited(RagbridgeError):
    status = 429
    type = "rate_limit_error"


class UpstreamError(RagbridgeError):
    """The upstream LLM or embedding API failed (after retries)."""

    status = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "upstream_timeout"


class ServiceUnavailable(RagbridgeError):
    status = 503
    type = "service_unavailable"


class EmbeddingMismatch(Conflict):
    """A collection was built with another embedding model or dimension."""


class DocumentError(InvalidRequest):
    """A document could not be read: corrupt, encrypted, empty or unparseable."""

    status = 422
