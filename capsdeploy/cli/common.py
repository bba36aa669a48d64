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


def data_options(fn):
    """--data-dir and --no-download, shared by train, eval and validate (each defines its own --dataset)."""
    fn = click.option(
        "--no-download",
        is_flag=True,
        help="Never fetch missing dataset files; fail and say where to put them.",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        help="Folder holding the IDX files (looked up before $CAPSDEPLOY_DATA and the cache).",
    )(fn)
    return fn


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
