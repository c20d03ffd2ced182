"""ragbridge replicas as real processes (`python -m ragbridge serve`), for multi-replica tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port


def replica_env(**settings: str) -> dict[str, str]:
    """This process's environment without RAGBRIDGE_* variables, plus `settings` (env names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    env.update(
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        RAGBRIDGE_SAMPLE_COLLECTION="false",
    )
    env.update(settings)
    return env


def ragbridge_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `python -m ragbridge ARGS...`; its stdout, or an assertion error with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "ragbridge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Replica:
    """One `ragbridge serve` process on a free loopback port; its log goes to `log`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ragbridge", "serve", "--port", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def wait_healthy(self, timeout: float = 120) -> None:
        """Wait for `/health` (startup imports torch: seconds on a busy machine)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"replica died:\n{self.log.read_text()}"
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"replica did not start:\n{self.log.read_text()}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, like a node that vanished."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
