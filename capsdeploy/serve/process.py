"""`capsdeploy serve` as a child process: start it on a free port, learn its URL, stop it with
SIGTERM (a drain) and get its exit code. Used by HTTP benchmarks, smoke checks and tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for listeners that take no port 0, e.g. --grpc-port)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        proc: subprocess.Popen,
        url: str,
        log: Path,
        grpc_url: str | None = None,
        metrics_url: str | None = None,
    ):
        self.proc, self.url, self.log = proc, url, log
        self.grpc_url, self.metrics_url = grpc_url, metrics_url

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def grpc_host_port(self) -> str | None:
        return self.grpc_url.removeprefix("grpc://") if self.grpc_url else None

    @classmethod
    def start(
        cls, args, log_dir: str | Path, timeout: float = 120, launcher=None, env_extra=None, port: int = 0
    ) -> ServerProcess:
        """`capsdeploy serve ARGS --port PORT` (0: a free one), gRPC and metrics on free ports
        unless ARGS name them; returns once it listens. ``launcher``: the Python arguments that
        run the CLI (default ``-m capsdeploy``). Its stderr goes to a log file.

        A port found free here can be taken by another process before the server binds it
        (parallel tests, other servers): when the server then cannot listen on a port this method
        chose, it starts again on fresh ones, up to three times (each attempt gets ``timeout``)."""
        attempt = 1
        while True:
            chosen: list[str] = []
            cli = [*(launcher or ["-m", "capsdeploy"]), "serve", *map(str, args), "--port", str(port)]
            for flag in ("--grpc-port", "--metrics-port"):  # never the fixed defaults: tests run side by side
                if flag not in cli:
                    chosen.append(str(free_port()))
                    cli += [flag, chosen[-1]]
            if "--log-level" not in cli:
                cli += ["--log-level", "warning"]
            try:
                return cls._launch(cli, log_dir, timeout, env_extra)
            except RuntimeError as e:
                taken = "cannot listen" in str(e) and any(f":{p} " in str(e) for p in chosen)
                if attempt == 3 or not taken:
                    raise
            attempt += 1

    @classmethod
    def _launch(cls, cli: list[str], log_dir: str | Path, timeout: float, env_extra) -> ServerProcess:
        log = Path(log_dir) / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, *cli], stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
        found: dict[str, str | None] = {}
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE

        def read():
            for line in stdout:
                m = re.search(r"serving .*? on (http://[^\s;]+)", line)
                if m and "url" not in found:
                    g = re.search(r"gRPC on (grpc://[^\s;]+)", line)
                    mt = re.search(r"metrics on (http://[^\s;]+)", line)
                    found["grpc"] = g.group(1) if g else None
                    found["metrics"] = mt.group(1) if mt else None
                    found["url"] = m.group(1)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while "url" not in found:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(
                    f"`capsdeploy serve` did not start (exit {proc.returncode}):\n{log.read_text()}"
                )
            time.sleep(0.05)
        url = found["url"]
        assert url is not None  # set from the line that matched
        return cls(proc, url, log, found["grpc"], found["metrics"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it; its exit code (0 after a clean drain)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
