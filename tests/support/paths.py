"""Where the tests' own data lives: inside the repository, never beside it."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# Requests recorded from a real Open WebUI (see tests/fixtures/openwebui/README.md).
OPENWEBUI_FIXTURES = TESTS / "fixtures" / "openwebui"
