"""Upstream LLM: the OpenAI-compatible client, the extractive fallback, caching, usage."""
