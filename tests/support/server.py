"""Servers for tests and benchmarks on loopback: an ASGI app under uvicorn in a thread, or a
server (`ragbridge serve`, the scripted upstream, open-webui...) in a process of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn


def free_port() -> int:
    """A loopback port nobody listens on right now (for servers to start, or to be refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(
    app: Any, *, startup_timeout: float = 60.0, config: uvicorn.Config | None = None
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields the base URL (no trailing slash).

    `config` replaces the plain test configuration (e.g. `ragbridge serve`'s own).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if config is None:
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
    server = uvicorn.Server(config)

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("server thread died during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def ragbridge_env(data_dir: Path | None = None, **settings: str) -> dict[str, str]:
    """This process's environment without RAGBRIDGE_* (no developer setting leaks in), offline,
    with no sample collection, plus `data_dir` and `settings` (environment names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the caller's policy, else the project's
    env.update(HF_HUB_OFFLINE="1", RAGBRIDGE_SAMPLE_COLLECTION="false")
    if data_dir is not None:
        env["RAGBRIDGE_DATA_DIR"] = str(data_dir)
    env.update(settings)
    return env


class ServerProcess:
    """A server in a process of its own on loopback; its stdout and stderr go to `log`
    (discarded without one, or shown with `echo`)."""

    def __init__(
        self,
        args: Sequence[str],
        url: str,
        env: Mapping[str, str],
        log: Path | None = None,
        *,
        cwd: Path | None = None,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.log = log
        if log is None:
            output = None if echo else subprocess.DEVNULL
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=output, stderr=output)
        else:
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
                )

    @classmethod
    def ragbridge(cls, env: Mapping[str, str], log: Path | None = None, *args: str) -> Self:
        """`python -m ragbridge serve --port <free port> ARGS...` (not waited for)."""
        port = free_port()
        command = [sys.executable, "-m", "ragbridge", "serve", "--port", str(port), *args]
        return cls(command, f"http://127.0.0.1:{port}", env, log)

    def output(self, chars: int = 4000) -> str:
        """The end of what the process wrote (empty without a log file)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-chars:]

    def wait_ready(self, probe: str = "/health", timeout: float = 120.0) -> None:
        """Poll `url + probe` until it answers 200; fails with the output if the process
        exits or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.returncode}:\n"
                                   f"{self.output()}")  # fmt: skip
            try:
                if httpx.get(self.url + probe, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}{probe} did not answer:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait, SIGKILL after `timeout` seconds (at once with 0)."""
        if self.proc.poll() is None:
            if timeout > 0:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout)
                    return
                except subprocess.TimeoutExpired:
                    pass
            self.proc.kill()
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, like a node that vanished."""
        self.stop(timeout=0)


@contextmanager
def running(
    server: ServerProcess,
    *,
    probe: str = "/health",
    startup_timeout: float = 120.0,
    stop_timeout: float = 30.0,
) -> Iterator[ServerProcess]:
    """`server` once `probe` answers 200, until the block ends; then stopped (`stop_timeout`)."""
    try:
        server.wait_ready(probe, startup_timeout)
        yield server
    finally:
        server.stop(stop_timeout)


def ragbridge_serve(
    env: Mapping[str, str],
    log: Path | None = None,
    *args: str,
    probe: str = "/health",
    startup_timeout: float = 120.0,
    stop_timeout: float = 30.0,
) -> AbstractContextManager[ServerProcess]:
    """`with ragbridge_serve(env, log) as server:` a `ragbridge serve` process, once `probe`
    answers; stopped (SIGTERM, SIGKILL after `stop_timeout` s) when the block ends."""
    return running(
        ServerProcess.ragbridge(env, log, *args),
        probe=probe,
        startup_timeout=startup_timeout,
        stop_timeout=stop_timeout,
    )
