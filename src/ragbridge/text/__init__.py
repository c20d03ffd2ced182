"""Text helpers every layer shares: token estimates and script detection (Hangul, CJK)."""
