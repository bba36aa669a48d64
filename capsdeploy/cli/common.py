"""Shared CLI plumbing: turn CapsDeployError into a one-line message and exit code."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..errors import CapsDeployError, UsageError

HEAVY_DEPENDENCIES = {"torch", "onnx", "onnxscript", "onnxslim", "safetensors", "onnxruntime", "tensorrt"}


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CapsDeployError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except ImportError as e:
            # A torch-free install (requirements/runtime.txt) running a command that needs more.
            if e.name not in HEAVY_DEPENDENCIES:
                raise
            click.echo(
                f"error: this command needs {e.name}, which is not installed (an inference-only install?); "
                "install the complete package with `pip install capsdeploy`, or use --engine ort",
                err=True,
            )
            sys.exit(2)

    return wrapper


def data_dir_option(fn):
    """--data-dir: where the IDX files are, for every command that reads a dataset."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        help="Folder holding the IDX files (looked up before $CAPSDEPLOY_DATA and the cache).",
    )(fn)


def data_options(fn):
    """--data-dir and --no-download, shared by train, eval and validate (each defines its own --dataset)."""
    fn = click.option(
        "--no-download",
        is_flag=True,
        help="Never fetch missing dataset files; fail and say where to put them.",
    )(fn)
    return data_dir_option(fn)


def json_option(what: str = "the results"):
    """--json PATH ('-' for stdout), for commands whose output scripts consume."""
    return click.option("--json", "json_dest", metavar="PATH", help=f"Write {what} as JSON; '-' for stdout.")


def threads_option(fn):
    return click.option(
        "--threads", type=click.IntRange(1), help="Intra-op threads of ort and ov engines (and of torch)."
    )(fn)


def comma_list(cast, example: str):
    """A click callback: '1,8,32' (or spaces) -> [1, 8, 32]; nothing given -> []."""

    def parse(ctx, param, value):
        if not value:
            return []
        try:
            return [cast(v) for v in value.replace(",", " ").split()]
        except ValueError:
            raise click.BadParameter(f"a comma-separated list, e.g. {example}") from None

    return parse


def timing_options(warmup_s: float = 0.2, duration_s: float = 3.0):
    """trtexec's --warmUp/--duration, in seconds: every (engine, batch) is warmed up, then timed
    back to back for at least the duration."""

    def decorate(fn):
        fn = click.option(
            "--duration-s",
            type=click.FloatRange(0.01),
            default=duration_s,
            show_default=True,
            help="Timed inferences per (engine, batch), back to back.",
        )(fn)
        return click.option(
            "--warmup-s",
            type=click.FloatRange(0),
            default=warmup_s,
            show_default=True,
            help="Inferences discarded before timing.",
        )(fn)

    return decorate


def parse_json_option(value: str | None, flag: str) -> dict:
    """A flag that takes a JSON object inline or from a file."""
    if not value:
        return {}
    text = Path(value).read_text() if Path(value).is_file() else value
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag}: not a JSON object or a path to one ({e})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{flag}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _sizes(ctx, param, value):
    try:
        return tuple(int(v) for v in value.replace(",", " ").split()) if value else ()
    except ValueError:
        raise click.BadParameter("a list of integers, e.g. 8,16,32") from None


def batching_options(prefix: str = ""):
    """Triton's scheduling knobs (config.pbtxt): export writes them, serve --model uses them,
    bench batcher times them (so it measures what serve runs by default)."""

    def decorate(fn):
        options = [
            click.option(
                "--max-batch-size",
                type=click.IntRange(1),
                default=64,
                show_default=True,
                help=prefix + "largest batch the scheduler forms (and the most rows one request may send).",
            ),
            click.option(
                "--instances",
                type=click.IntRange(1),
                default=1,
                show_default=True,
                help=prefix + "model instances (batcher workers, each on its own engine handle).",
            ),
            click.option(
                "--max-queue-delay-us",
                type=click.IntRange(0),
                default=500,
                show_default=True,
                help=prefix + "how long a request may wait for a batch to fill.",
            ),
            click.option(
                "--preferred-batch-sizes",
                callback=_sizes,
                metavar="N,N,...",
                help=prefix + "batch sizes the scheduler cuts at when it can.",
            ),
            click.option(
                "--max-queue-size",
                type=click.IntRange(0),
                default=1024,
                show_default=True,
                help=prefix + "queued requests before new ones are refused with 503; 0: unbounded.",
            ),
            click.option(
                "--default-timeout-us",
                type=click.IntRange(0),
                default=30_000_000,
                show_default=True,
                help=prefix + "queue timeout of a request that names none.",
            ),
        ]
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


def batching_from(kw: dict):
    """Pop the batching options out of a command's kwargs into BatchingOptions."""
    from ..repository import BatchingOptions

    return BatchingOptions(
        max_batch_size=kw.pop("max_batch_size"),
        instances=kw.pop("instances"),
        max_queue_delay_us=kw.pop("max_queue_delay_us"),
        preferred_batch_sizes=kw.pop("preferred_batch_sizes"),
        max_queue_size=kw.pop("max_queue_size"),
        default_timeout_us=kw.pop("default_timeout_us"),
    )
