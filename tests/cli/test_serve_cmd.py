"""`serve --model RUN`: the CLI exports the run, serve only reads what was exported."""

import tempfile

import pytest

from capsdeploy.cli.serve_cmd import load_model_or_run
from capsdeploy.errors import UsageError
from capsdeploy.repository import BatchingOptions
from capsdeploy.serve.models import load_model_path


def test_serve_alone_refuses_a_run_directory_it_would_have_to_export(tiny_run):
    with pytest.raises(UsageError, match="export it first"):
        load_model_path(tiny_run, "ort", BatchingOptions())


def test_a_failed_export_leaves_no_temporary_repository(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    with pytest.raises(UsageError):
        load_model_or_run(not_a_run, "ort", BatchingOptions())
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]
