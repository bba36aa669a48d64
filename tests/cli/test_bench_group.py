"""`capsdeploy bench` as a group: four subcommands, each with only its own options, the batching
options (and their defaults) shared with serve and export, and the flag form of the previous
release still running with a deprecation line. In-process (CliRunner): no server or signal here."""

import json
import re

import pytest
from click.testing import CliRunner

from capsdeploy.cli.main import cli
from capsdeploy.export import ExportOptions, export_onnx

SUBCOMMANDS = ("engines", "sweep", "http", "batcher")
# The --json document of an engine run, in the order the flag form wrote it.
ENGINE_KEYS = [
    "environment", "dataset", "mode", "checkpoint", "batch_sizes", "warmup_s", "duration_s", "threads",
    "instances", "peak_fp32_gemm_gflops", "peak_fp32_gemm_gflops_gpu", "peak_int8_gemm_gops", "results",
    "warnings",
]  # fmt: skip
BATCHER_KEYS = [
    "engine", "model", "environment", "clients", "requests_per_client", "repeats", "max_batch_size",
    "max_queue_delay_us", "batcher_workers", "modes", "batcher_speedup_median",
]  # fmt: skip
FAST = ["--warmup-s", "0", "--duration-s", "0.05"]


def bench(*args):
    return CliRunner().invoke(cli, ["bench", *map(str, args)])


@pytest.fixture(scope="module")
def onnx_file(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-group") / "m.onnx"
    export_onnx(tiny_run, path, ExportOptions())
    return path


def test_bench_help_lists_the_four_subcommands_and_not_the_flag_form():
    result = bench("--help")
    assert result.exit_code == 0
    options, commands = result.stdout.split("Options:")[1].split("Commands:")
    assert set(re.findall(r"^  (\S+)", commands, re.M)) == set(SUBCOMMANDS)
    assert options.split() == [
        "-h,",
        "--help",
        "Show",
        "this",
        "message",
        "and",
        "exit.",
    ]  # the flag form is hidden


def test_bare_bench_shows_the_subcommands_and_fails():
    result = bench()
    assert result.exit_code == 2 and "Commands:" in result.stdout


@pytest.mark.parametrize(
    ("sub", "own", "foreign"),
    [
        ("engines", ["--engines", "--peers", "--profile", "--plot", "--cuda-graphs"], ["--url", "--clients", "--routing-iters"]),
        ("sweep", ["--routing-iters", "--batch-size", "--markdown"], ["--peers", "--url", "--batch-sizes", "--plot"]),
        ("http", ["--url", "--concurrency", "--request-rate", "--poisson"], ["--engines", "--checkpoint", "--max-batch-size"]),
        ("batcher", ["--clients", "--max-batch-size", "--instances", "--preferred-batch-sizes"], ["--url", "--engines", "--workers"]),
    ],
)  # fmt: skip
def test_each_subcommand_shows_only_its_own_options(sub, own, foreign):
    text = bench(sub, "--help").stdout
    assert all(f in text for f in own), [f for f in own if f not in text]
    assert not [f for f in foreign if f"{f} " in text]


@pytest.mark.parametrize(
    "args",
    [
        ["http", "--url", "http://127.0.0.1:9", "--engines", "torch"],
        ["http", "--url", "http://127.0.0.1:9", "--batch-sizes", "8"],
        ["engines", "--engines", "ort", "--concurrency", "4"],
        ["sweep", "--checkpoint", "x", "--routing-iters", "1,2", "--model", "m.onnx"],
        ["sweep", "--checkpoint", "x", "--routing-iters", "1,2", "--peers"],
        ["batcher", "--model", "m.onnx", "--url", "http://127.0.0.1:9"],
    ],
)
def test_a_subcommand_refuses_another_modes_flag(args):
    """What the flag form's block of stray-flag checks did, click does from each subcommand's options."""
    result = bench(*args)
    assert result.exit_code == 2 and "No such option" in result.stderr


def test_poisson_without_a_rate_is_refused():
    result = bench("http", "--url", "http://127.0.0.1:9", "--poisson", "--json", "-")
    assert result.exit_code == 2 and "give --request-rate" in result.stderr


def test_flag_form_options_before_a_subcommand_are_refused():
    result = bench("--json", "-", "engines", "--engines", "ort")
    assert result.exit_code == 2 and "go after the subcommand" in result.stderr


def test_engines_writes_the_flag_forms_json_keys_and_the_flag_form_warns(tiny_run, onnx_file):
    args = ["--checkpoint", tiny_run, "--engines", "torch", "--model", onnx_file, "--batch-sizes", "2", *FAST]
    new = bench("engines", *args, "--json", "-")
    old = bench(*args, "--json", "-")
    assert new.exit_code == 0, new.output
    assert old.exit_code == 0, old.output
    assert "deprecated" not in new.stderr
    assert old.stderr.strip().splitlines() == [
        "warning: `capsdeploy bench --engines ...` is deprecated; use `capsdeploy bench engines ...`; "
        "the flag form goes in the next release"
    ]
    new_doc, old_doc = json.loads(new.stdout), json.loads(old.stdout)
    assert list(new_doc) == list(old_doc) == ENGINE_KEYS
    assert new_doc["mode"] == "engine" and new_doc["batch_sizes"] == [2]
    assert [(r["engine"], r["batch"]) for r in new_doc["results"]] == [("torch", 2), ("m.onnx", 2)]
    assert [list(r) for r in new_doc["results"]] == [list(r) for r in old_doc["results"]]


def test_sweep_reports_each_routing_count_at_one_batch(tiny_run):
    result = bench(
        "sweep", "--checkpoint", tiny_run, "--routing-iters", "1,2", "--batch-size", 3,
        "--accuracy-samples", 16, *FAST, "--json", "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == [*ENGINE_KEYS, "routing_iters"]
    assert doc["mode"] == "routing-sweep" and doc["routing_iters"] == [1, 2] and doc["batch_sizes"] == [3]
    assert [(r["engine"], r["routing_iters"]) for r in doc["results"]] == [("ort-r1", 1), ("ort-r2", 2)]
    assert all(0 <= r["accuracy"] <= 1 for r in doc["results"])


def test_the_flag_form_sweep_names_its_subcommand_and_renamed_flag(tiny_run):
    result = bench(
        "--checkpoint", tiny_run, "--routing-iters", "1", "--batch-sizes", "2", *FAST, "--json", "-"
    )
    assert result.exit_code == 0, result.output
    assert "use `capsdeploy bench sweep ...` (--batch-sizes is --batch-size there)" in result.stderr
    assert json.loads(result.stdout)["batch_sizes"] == [2]


def test_batcher_takes_the_shared_batching_options_and_serves_defaults(onnx_file):
    load = ["--model", onnx_file, "--clients", 3, "--requests", 2, "--repeats", 1, "--json", "-"]
    defaults = bench("batcher", *load)
    assert defaults.exit_code == 0, defaults.output
    doc = json.loads(defaults.stdout)
    assert list(doc) == BATCHER_KEYS
    # cli/common.py's batching defaults, as serve and export have them (the flag form's were 32 and 2000).
    assert (doc["max_batch_size"], doc["max_queue_delay_us"], doc["batcher_workers"]) == (64, 500, 1)
    tuned = bench("batcher", *load, "--max-batch-size", 4, "--max-queue-delay-us", 100, "--instances", 2)
    assert tuned.exit_code == 0, tuned.output
    doc = json.loads(tuned.stdout)
    assert (doc["max_batch_size"], doc["max_queue_delay_us"], doc["batcher_workers"]) == (4, 100, 2)
    assert len(doc["modes"]["dynamic_batcher"]["batches_per_worker"]) == 2


def test_the_flag_form_batcher_keeps_its_defaults_and_warns(onnx_file):
    result = bench(
        "--model", onnx_file, "--clients", 3, "--requests", 2, "--repeats", 1, "--workers", 2, "--json", "-"
    )
    assert result.exit_code == 0, result.output
    assert "use `capsdeploy bench batcher ...` (--workers is --instances there" in result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == BATCHER_KEYS
    assert (doc["max_batch_size"], doc["max_queue_delay_us"], doc["batcher_workers"]) == (32, 2000, 2)


def test_a_zero_default_timeout_means_none_set_as_serve_reads_it(onnx_file):
    """`--default-timeout-us 0` (accepted by the shared batching options) runs, as in serve,
    instead of a traceback from the batcher's timeout check."""
    load = ["--model", onnx_file, "--clients", 2, "--requests", 2, "--repeats", 1, "--json", "-"]
    result = bench("batcher", *load, "--default-timeout-us", 0)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["modes"]["dynamic_batcher"]


@pytest.mark.parametrize("table_flag", [["--batch-sizes", "1,8"], ["--csv", "x.csv"]])
def test_the_flag_form_with_only_table_flags_asks_for_an_engine(table_flag, tmp_path):
    """Table flags alone select engine mode in the flag form: one line and exit 2, as before."""
    result = bench(*table_flag, "--checkpoint", tmp_path / "nonexistent")
    assert result.exit_code == 2, result.output
    assert "name at least one engine" in result.output and not isinstance(result.exception, StopIteration)


def test_an_engine_this_cpu_cannot_run_is_skipped_with_the_reason_in_a_comparison(onnx_file, monkeypatch):
    """`bench engines --model ov=F,ov-bf16=F` on a CPU without bf16 (OpenVINO's capabilities
    faked to lack BF16): ov is timed and ov-bf16 is listed as skipped, instead of the whole
    comparison exiting 2; asked for alone, ov-bf16 is still refused."""
    import capsdeploy.runtime.ov_backend as ovb

    monkeypatch.setattr(ovb, "device_capabilities", lambda device="CPU": ["FP32", "INT8"])
    both = bench("engines", "--model", f"ov={onnx_file},ov-bf16={onnx_file}", "--batch-sizes", 1, *FAST,
                 "--dataset", "synthetic", "--json", "-")  # fmt: skip
    assert both.exit_code == 0, both.output
    doc = json.loads(both.stdout)
    assert {r["engine"] for r in doc["results"]} == {"ov:m.onnx"}
    assert any(w.startswith("ov-bf16:m.onnx: skipped on this machine") and "BF16" in w for w in doc["warnings"])
    alone = bench("engines", "--model", f"ov-bf16={onnx_file}", "--batch-sizes", 1, *FAST, "--dataset", "synthetic")
    assert alone.exit_code == 2 and "no BF16 support" in alone.output
