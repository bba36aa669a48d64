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


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    @classmethod
    def start(
        cls, args, log_dir: str | Path, timeout: float = 120, launcher=None, env_extra=None, port: int = 0
    ) -> ServerProcess:
        """`capsdeploy serve ARGS --port PORT` (0: a free one); returns once it listens.
        ``launcher``: the Python arguments that run the CLI (default ``-m capsdeploy``). Its
        stderr goes to a log file."""
        log = Path(log_dir) / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
        cli = [*(launcher or ["-m", "capsdeploy"]), "serve", *map(str, args), "--port", str(port)]
        if "--log-level" not in cli:
            cli += ["--log-level", "warning"]
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, *cli], stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
        found: dict[str, str] = {}

        def read():
            for line in proc.stdout:
                m = re.search(r" on (http://\S+)", line)
                if m and "url" not in found:
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
        return cls(proc, found["url"], log)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it; its exit code (0 after a clean drain)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
