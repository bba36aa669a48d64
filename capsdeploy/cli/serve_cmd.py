from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ..runtime.select import ENGINES
from .common import batching_from, batching_options, handle_errors


@click.command("serve")
@click.argument("repository", required=False, type=click.Path())
@click.option(
    "--model",
    type=click.Path(),
    help="Serve one model instead of a repository: a run directory (capsnet + decoder), a .onnx or a .plan.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="auto: the engine a repository was tuned for (`export --tuned`), OpenVINO for an openvino "
    "model, else TensorRT where it and a GPU are present, else ONNX Runtime (CUDA, then CPU).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port."
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Triton's GRPCInferenceService on this port, in the same process (0: no gRPC).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=8002,
    show_default=True,
    help="Prometheus metrics at /metrics on this port, as Triton serves them (0: only the HTTP "
    "port's /metrics).",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(0.001),
    default=64.0,
    show_default=True,
    help="Largest request body (HTTP) and message (gRPC).",
)
@click.option(
    "--drain-delay",
    "drain_delay_s",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="On SIGTERM: seconds to keep serving, not ready and with `Connection: close`, before the "
    "listener closes (time for load balancers to stop routing here).",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0),
    default=20.0,
    show_default=True,
    help="On SIGTERM, after --drain-delay: seconds accepted requests get to finish.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@batching_options("--model only: ")
@handle_errors
def serve_cmd(
    repository,
    model,
    engine,
    host,
    port,
    grpc_port,
    metrics_port,
    max_body_mb,
    drain_delay_s,
    grace_s,
    log_level,
    **kw,
):
    """Serve a Triton model repository over Triton's HTTP and gRPC protocols (KServe V2).

    \b
    Every model in REPOSITORY is loaded, batched and scheduled by its own config.pbtxt
    (max_batch_size, dynamic_batching, queue policy, instance_group), as Triton does;
    tritonclient (HTTP and gRPC) and perf_analyzer work against it unchanged (tested).
      capsdeploy export --format triton --checkpoint runs/mnist --output repo
      capsdeploy serve repo --port 8000            # gRPC on 8001, metrics on 8002
    Open http://127.0.0.1:8000/ to draw a digit and steer its capsule.

    \b
    HTTP: /v2/health/{live,ready}, /v2, /v2/models/{m}[/versions/{v}]
    [/ready|/config|/stats|/infer], /v2/repository/index,
    /v2/{system,cuda}sharedmemory/... , /v1/predict (PNG/JPEG upload), /metrics.
    gRPC: inference.GRPCInferenceService (infer, streaming infer, metadata, config,
    statistics, repository index, shared memory). Non-finite inputs pass to the model, as
    in Triton (config parameter capsdeploy.refuse_non_finite="true" refuses them).
    Differences from Triton are listed in docs/serve.md.
    SIGTERM: readiness off and `Connection: close` for --drain-delay seconds, then both
    listeners close and accepted requests finish within --grace; exit 0.
    """
    import logging

    from ..errors import UsageError
    from ..serve.app import ServerState
    from ..serve.models import load_repository
    from ..serve.server import run

    if bool(repository) == bool(model):
        raise UsageError("give a REPOSITORY or --model PATH (one of them)")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    batching = batching_from(kw)
    batching.check()
    state = ServerState({}, max_body_bytes=int(max_body_mb * (1 << 20)))
    tmp = None
    if repository:
        models = load_repository(repository, engine, on_batch=state.observe_batch)
    else:
        models, tmp = load_model_or_run(model, engine, batching, on_batch=state.observe_batch)
    state.models.update(models)
    try:
        for m in models.values():
            m.backend.warmup()  # the first request should not pay for lazy initialization
        run(state, host, port, grace_s, log_level, drain_delay_s, grpc_port, metrics_port)
    finally:
        for m in models.values():
            m.close(drain_s=0)
        if tmp is not None:
            tmp.cleanup()


def load_model_or_run(
    path: str | Path, engine: str, batching, on_batch=None
) -> tuple[dict, tempfile.TemporaryDirectory | None]:
    """``serve --model PATH``'s models, and the temporary directory to clean up after serving.

    A run directory on an exported engine is exported once into a temporary repository and
    that is served: exactly what `export --format triton` then `serve REPO` would do. The
    export happens here so that serve itself reads repositories and model files only."""
    from ..serve.models import load_model_path, load_repository

    if not (Path(path).is_dir() and not engine.startswith("torch")):
        return load_model_path(path, engine, batching, on_batch), None
    from ..export import ExportOptions
    from ..export.triton_repo import export_triton

    tmp = tempfile.TemporaryDirectory(prefix="capsdeploy-serve-")
    try:
        repo = Path(tmp.name) / "repo"
        export_triton(path, repo, ExportOptions(), batching)
        return load_repository(repo, engine, on_batch), tmp
    except BaseException:
        tmp.cleanup()
        raise
