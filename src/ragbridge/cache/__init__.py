"""Caches: in-process LRU with TTL, or Redis shared across replicas."""
