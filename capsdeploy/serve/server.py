"""Run the front ends: HTTP on uvicorn, gRPC (grpc.aio) in the same event loop, Prometheus
metrics on their own port (Triton's layout); on SIGTERM drain both transports and exit 0.

SIGTERM first turns readiness off and, for ``drain_delay`` seconds, keeps serving while every
response says ``Connection: close`` (load balancers stop routing here, keep-alive clients
reconnect elsewhere instead of finding their connection closed under a request). Then the
listeners close (HTTP's and gRPC's: gRPC refuses new RPCs and lets those in flight finish),
accepted requests finish, the batchers drain and the backends close, all within one deadline: signal + drain_delay + grace. uvicorn re-raises the signal after a
graceful shutdown (exit 143); a drained SIGTERM is a clean stop, so we exit 0. SIGINT (Ctrl-C)
skips the delay; a second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from .app import ServerState, create_app

if TYPE_CHECKING:  # imported at run time only when gRPC is served (grpcio is heavy)
    from .grpc_server import GrpcFrontEnd

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
        self.grpc: GrpcFrontEnd | None = None  # stopped with the HTTP listener
        self.loop: asyncio.AbstractEventLoop | None = None

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
        grpc = self.grpc
        if grpc is not None and self.loop is not None:  # from a signal handler or the timer thread
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(grpc.stop(self.remaining())))
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
    grpc_port: int = 0,
    metrics_port: int = 0,
) -> None:
    """Serve until a signal. ``grpc_port`` / ``metrics_port``: 0 disables that listener."""
    server: DrainingServer | None = None
    shown = f"[{host}]" if ":" in host else host

    def shutdown():
        drain = server.remaining() if server is not None else grace_s  # one deadline for every phase
        for m in state.models.values():
            m.close(drain_s=drain)

    # Every listener is claimed before uvicorn starts, so a taken port is a one-line usage
    # error (exit 2), not a failed ASGI start-up.
    grpc_front = None
    if grpc_port:
        from .grpc_server import GrpcFrontEnd

        _check_free(host, grpc_port, "--grpc-port")
        grpc_front = GrpcFrontEnd(state, host, grpc_port)
    metrics_url = None
    if metrics_port:
        metrics_url = f"metrics on http://{shown}:{start_metrics(state, host, metrics_port)}/metrics"

    failed: list[BaseException] = []

    async def startup():
        try:
            await _startup()
        except Exception as e:  # uvicorn only logs a failed startup; the caller must see it
            failed.append(e)
            raise

    async def _startup():
        assert server is not None  # created before uvicorn runs the start-up hook
        server.loop = asyncio.get_running_loop()
        lines = [f"serving {', '.join(sorted(state.models))} on http://{shown}:{actual}"]
        if grpc_front is not None:
            from ..errors import UsageError

            try:
                bound = await grpc_front.start()
            except OSError as e:
                raise UsageError(str(e)) from None
            lines.append(f"gRPC on grpc://{shown}:{bound}")
        if metrics_url:
            lines.append(metrics_url)
        print("; ".join(lines), flush=True)  # one line: scripts wait for it

    async def stopping():
        if grpc_front is not None and server is not None:
            await grpc_front.stop(server.remaining())

    app = create_app(state, on_shutdown=shutdown, on_startup=startup, on_stopping=stopping)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # our AccessLog writes one JSON line per request, with its id
        # uvicorn annotates int, but hands the value to asyncio.wait_for, which takes float seconds.
        timeout_graceful_shutdown=grace_s,  # type: ignore[arg-type]
        lifespan="on",
    )
    server = DrainingServer(config, state, drain_delay_s, grace_s)
    server.grpc = grpc_front
    sys.stdout.flush()
    server.run(sockets=[sock])
    if failed:
        raise failed[0]


def _check_free(host: str, port: int, flag: str) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    # As grpc binds: a port left in TIME_WAIT by the last server is free, a listening one is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        from ..errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}); choose another {flag}") from None
    finally:
        sock.close()


def start_metrics(state: ServerState, host: str, port: int) -> int:
    """Prometheus metrics on their own port, as Triton serves them on 8002 (/metrics there too)."""
    from prometheus_client import start_http_server

    try:
        httpd, _ = start_http_server(port, addr=host, registry=state.metrics.registry)
    except OSError as e:
        from ..errors import UsageError

        raise UsageError(
            f"cannot listen for metrics on {host}:{port} ({e.strerror}); choose another --metrics-port"
        ) from None
    return httpd.server_address[1]
