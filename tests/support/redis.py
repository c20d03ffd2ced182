"""A real `redis-server` for the tests: a free loopback port, no persistence, stoppable mid-test.

with running_redis(tmp_path) as redis:      # or the `redis_server` fixture
    redis.url, redis.client().keys("*")
    redis.stop()                             # an outage (SIGKILL, like a crashed server)
    redis.start()                            # back, on the same port, empty
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.server import free_port

REDIS_SERVER = "redis-server"


class RedisForTests:
    """One redis-server process on a fixed port; `stop()` and `start()` simulate an outage."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise RuntimeError("no redis-server: apt-get install redis-server (.ci/run does)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        args += ["--logfile", str(self.workdir / "redis.log")]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._read_log()}")
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server did not start: {self._read_log()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients) and wait until it is gone."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (a hung server)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A synchronous client, for looking at what ragbridge stored."""
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def _read_log(self) -> str:
        log = self.workdir / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisForTests]:
    """A started redis-server, killed at exit."""
    server = RedisForTests(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
