import json

import pytest

from tests.helpers import capsdeploy, tiny_train_args

# The refusals below come after the data is made: 64 digits are rendered as fast as none.
SMALL_SYNTHETIC = ["train", "--dataset", "synthetic", "--max-train-samples", "64", "--max-test-samples", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    capsdeploy(*tiny_train_args(out, epochs=1), check=True)
    return out


def test_eval_json_to_stdout_and_grid(run_dir, tmp_path):
    grid = tmp_path / "grid.png"
    proc = capsdeploy(
        "eval", "--checkpoint", run_dir, "--max-samples", 30, "--json", "-", "--grid", grid, check=True
    )
    report = json.loads(proc.stdout)
    assert report["num_samples"] == 30 and report["split"] == "t10k"
    assert sum(map(sum, report["confusion_matrix"])) == 30
    assert sum(r["support"] for r in report["per_class"]) == 30
    from PIL import Image

    img = Image.open(grid)
    assert img.size == (10 * 28 * 3, 2 * 2 * 28 * 3)  # 20 images: 2 rows of input+reconstruction


def test_eval_text_report(run_dir):
    proc = capsdeploy("eval", "--checkpoint", run_dir, "--max-samples", 20, check=True)
    assert "accuracy" in proc.stdout and "confusion matrix" in proc.stdout


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["eval", "--checkpoint", "no/such/dir"], 2, "no such run directory"),
        (["train", "--dataset", "cifar", "--out", "x"], 2, "cifar"),
        (
            ["train", "--dataset", "mnist", "--data-dir", "{tmp}", "--out", "{tmp}/r", "--no-download"],
            2,
            "train-images-idx3-ubyte.gz",
        ),
        (["train", "--dataset", "synthetic", "--out", "{tmp}/r", "--model-config", "[1]"], 2, "JSON object"),
        (
            [*SMALL_SYNTHETIC, "--out", "{tmp}/r", "--model-config", '{"image_size": 32}'],
            2,
            "come from the data",
        ),
        (
            [
                *SMALL_SYNTHETIC,
                "--out",
                "{tmp}/r",
                "--model-config",
                '{"primary_kernel": 30}',
            ],
            2,
            "too small",
        ),
        (["train", "--resume", "{tmp}"], 2, "no resume state"),
        (["train"], 2, "--out"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, code, words):
    proc = capsdeploy(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == code
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "config.json").exists()


def test_eval_on_a_dataset_with_other_shape_is_refused(run_dir, tmp_path):
    import numpy as np

    from capsdeploy.data import write_idx

    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 32, 32), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    proc = capsdeploy("eval", "--checkpoint", run_dir, "--dataset", "mnist", "--data-dir", tmp_path)
    assert proc.returncode == 2 and "expects (1, 28, 28)" in proc.stderr


def test_info_json_and_version():
    env = json.loads(capsdeploy("info", "--json", "-", check=True).stdout)
    assert "CPUExecutionProvider" in env["onnxruntime_providers"]
    assert env["torch"] and env["capsdeploy"]
    proc = capsdeploy("--version", check=True)
    assert env["capsdeploy"] in proc.stdout


def test_help_explains_commands():
    out = capsdeploy("--help", check=True).stdout
    for cmd in ("train", "eval", "info"):
        assert cmd in out
    assert "digits10k" in capsdeploy("train", "--help", check=True).stdout
