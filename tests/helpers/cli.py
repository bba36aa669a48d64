"""Running the `capsdeploy` CLI from tests: in this process (fast) or in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path


def capsdeploy(*args, check=False, env_extra=None, **kw) -> subprocess.CompletedProcess:
    """The CLI in this process with click's CliRunner, as `python -m capsdeploy ARGS` would run
    it (exit code, stdout and stderr apart): a child would spend ~2 s importing torch again.
    `serve`, and calls that need their own environment or subprocess options (env_extra,
    timeout, cwd...), run in a child process: a server must be a process of its own."""
    argv = [str(a) for a in args]
    if env_extra or kw or argv[:1] == ["serve"]:
        return capsdeploy_process(*argv, check=check, env_extra=env_extra, **kw)
    from click.testing import CliRunner

    from capsdeploy.cli.main import cli

    threads = _torch_threads()
    with warnings.catch_warnings():  # as PYTHONWARNINGS=ignore does for the child
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(cli, argv, prog_name="capsdeploy")
    if threads is not None:  # a command may set torch's threads (bench does); later tests get ours
        import torch

        torch.set_num_threads(threads)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # what the child prints
    proc = subprocess.CompletedProcess(["capsdeploy", *argv], result.exit_code, result.stdout, stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def capsdeploy_process(*args, check=False, env_extra=None, **kw) -> subprocess.CompletedProcess:
    """Run the CLI in a child process, as a user would (signals, servers, a torch-free import)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "capsdeploy", *map(str, args)], capture_output=True, text=True, env=env, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tensorrt_ready() -> bool:
    """TensorRT and a CUDA device are both usable here (tests that expect them absent skip)."""
    from capsdeploy.errors import UsageError
    from capsdeploy.runtime.trt.environment import require_tensorrt

    try:
        require_tensorrt()
    except UsageError:
        return False
    return True


def torch_blocked(tmp_path):
    """(python -c code running the CLI, env with torch unimportable, path of the imported-modules
    dump): the inference path of a torch-free install, and what it imported."""
    blocker = Path(tmp_path) / "blocked"
    blocker.mkdir(exist_ok=True)
    (blocker / "torch.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    modules = Path(tmp_path) / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['capsdeploy', *sys.argv[1:]]\n"
        "from capsdeploy.cli.main import main\n"
        "main()\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{repo}"}
    return code, env, modules
