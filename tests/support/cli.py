"""The `ragbridge` CLI in a fresh interpreter, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def ragbridge_command(*args: str | Path) -> list[str]:
    """`python -m ragbridge ARGS...` with this interpreter."""
    return [sys.executable, "-m", "ragbridge", *map(str, args)]


def run_ragbridge(
    *args: str | Path, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; its exit code, stdout and stderr (text) are the caller's to check."""
    return subprocess.run(
        ragbridge_command(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
