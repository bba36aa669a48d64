"""Run the app on uvicorn: bind, warm up, serve, and on SIGTERM drain and exit 0.

SIGTERM first turns readiness off and, for ``drain_delay`` seconds, keeps serving while every
response says ``Connection: close`` (load balancers stop routing here, keep-alive clients
reconnect elsewhere instead of finding their connection closed under a request). Then the
listener closes, accepted requests finish, the batchers drain and the backends close, all
within one deadline: signal + drain_delay + grace. uvicorn re-raises the signal after a
graceful shutdown (exit 143); a drained SIGTERM is a clean stop, so we exit 0. SIGINT (Ctrl-C)
skips the delay; a second signal stops at once.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time

import uvicorn

from .app import ServerState, create_app

log = logging.getLogger("capsdeploy.serve")


class DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, state: ServerState, drain_delay: float = 0.0, grace: float = 30.0
    ):
        super().__init__(config)
        self.state = state
        self.drain_delay = drain_delay
        self.grace = grace
        self.deadline: float | None = None  # monotonic time by which everything has stopped
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig, frame) -> None:
        first = not self.state.draining
        self.state.ready = False
        self.state.draining = True
        delay = self.drain_delay if first and sig == signal.SIGTERM else 0.0
        if first:
            self.deadline = time.monotonic() + delay + self.grace
        if delay > 0:
            log.info("SIGTERM: not ready; serving with Connection: close for %.1f s, then draining", delay)
            self._timer = threading.Timer(delay, self._stop, args=(sig,))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._stop(sig)

    def _stop(self, sig) -> None:
        super().handle_exit(sig, None)
        if sig == signal.SIGTERM:
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic()) if self.deadline is not None else self.grace


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and accepted sockets inherit the listener's. With proto 0 a response's
    # body segment waited for the client's delayed ACK of the headers: 40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        from ..errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    # Listen now: a client that connects before uvicorn's loop starts waits in the backlog
    # instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(
    state: ServerState,
    host: str,
    port: int,
    grace_s: float = 20.0,
    log_level: str = "info",
    drain_delay_s: float = 0.0,
) -> None:
    server: DrainingServer | None = None

    def shutdown():
        drain = server.remaining() if server is not None else grace_s  # one deadline for every phase
        for m in state.models.values():
            m.close(drain_s=drain)

    app = create_app(state, on_shutdown=shutdown)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # our AccessLog writes one JSON line per request, with its id
        timeout_graceful_shutdown=grace_s,
        lifespan="on",
    )
    server = DrainingServer(config, state, drain_delay_s, grace_s)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(sorted(state.models))} on http://{shown}:{actual}", flush=True)
    sys.stdout.flush()
    server.run(sockets=[sock])
