"""For multi-replica tests (`ServerProcess.ragbridge` runs each replica): env and CLI calls."""

from __future__ import annotations

from tests.support.cli import run_ragbridge
from tests.support.server import ragbridge_env


def replica_env(**settings: str) -> dict[str, str]:
    """`ragbridge_env` for replicas: one OpenMP thread each, plus `settings` (env names)."""
    return ragbridge_env(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **settings)


def ragbridge_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `python -m ragbridge ARGS...`; its stdout, or an assertion error with its stderr."""
    done = run_ragbridge(*args, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout
