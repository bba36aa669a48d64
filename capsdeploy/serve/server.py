"""Run the app on uvicorn: bind, warm up, serve, and on SIGTERM drain and exit 0.

SIGTERM turns readiness off at once, stops accepting connections, lets every accepted
request finish within the grace period, then closes the batchers and backends. uvicorn
re-raises the signal after a graceful shutdown (exit 143); a drained SIGTERM is a clean
stop for an orchestrator, so we exit 0.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn

from .app import ServerState, create_app

log = logging.getLogger("capsdeploy.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState):
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig, frame) -> None:
        self.state.ready = False  # load balancers stop sending before the listener closes
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


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


def run(state: ServerState, host: str, port: int, grace_s: float = 30.0, log_level: str = "info") -> None:
    def shutdown():
        for m in state.models.values():
            m.close(drain_s=grace_s)

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
    server = DrainingServer(config, state)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(sorted(state.models))} on http://{shown}:{actual}", flush=True)
    sys.stdout.flush()
    server.run(sockets=[sock])
