"""Text to vectors: the packaged local model or a remote OpenAI-compatible API."""
