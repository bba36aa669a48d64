import json
import os
import subprocess
import sys

from safetensors.torch import load_file

TINY_JSON = json.dumps(
    {"conv1_channels": 16, "primary_caps": 4, "primary_dim": 4, "digit_dim": 8, "decoder_hidden": [32, 64]}
)


def capsdeploy(*args, check=False, env_extra=None, **kw):
    """Run the CLI in a child process, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "capsdeploy", *map(str, args)], capture_output=True, text=True, env=env, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny_train_args(out, epochs=2, samples=256, batch=32):
    return [
        "train",
        "--dataset",
        "synthetic",
        "--out",
        out,
        "--epochs",
        epochs,
        "--max-train-samples",
        samples,
        "--max-test-samples",
        64,
        "--batch-size",
        batch,
        "--model-config",
        TINY_JSON,
        "--seed",
        3,
    ]


def weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


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
    from pathlib import Path

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
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{repo}"}
    return code, env, modules
