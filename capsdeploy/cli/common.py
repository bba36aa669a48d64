"""Shared CLI plumbing: turn CapsDeployError into a one-line message and exit code."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..errors import CapsDeployError, UsageError


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CapsDeployError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper


def data_options(fn):
    """--dataset / --data-dir / --no-download, shared by train and eval."""
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
