"""The `ragbridge` CLI in a fresh interpreter, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def ragbridge(
    *args: str | Path, data_dir: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m ragbridge ARGS --data-dir DATA_DIR` with this process's env, `env` on top."""
    full_env = {
        **os.environ,
        "OMP_WAIT_POLICY": "PASSIVE",
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "ragbridge", *map(str, args), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
        check=False,
    )
