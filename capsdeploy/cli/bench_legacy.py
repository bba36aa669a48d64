"""The flag form of `capsdeploy bench` (one command, four modes told apart by which flags are
present), kept for one release beside the subcommands: its options ride on the group, hidden,
with their old defaults; a run names the subcommand that replaces it on stderr. Delete this
module, and the group's use of it, in the next release."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ..runtime.select import ENGINES
from .common import comma_list

# The one release the flag form is kept for ends with the next one.
DEPRECATION = (
    "warning: `capsdeploy bench {flag} ...` is deprecated; use `capsdeploy bench {sub} ...`{note}; "
    "the flag form goes in the next release"
)
# Flags that only engine mode has: any of them selects it (and refuses --url).
ENGINE_ONLY = {
    "batch_sizes": "--batch-sizes",
    "csv_dest": "--csv",
    "md_dest": "--markdown",
    "plot_dest": "--plot",
}


def _hidden(*decls, **kw):
    return click.option(*decls, hidden=True, **kw)


_OPTIONS = [
    _hidden("--engines", callback=comma_list(str, "torch,ort,ort-int8")),
    _hidden("--instances", type=click.IntRange(1), default=1),
    _hidden("--profile", is_flag=True),
    _hidden("--peers", is_flag=True),
    _hidden("--engine", type=click.Choice(ENGINES), default="ort"),
    _hidden("--model", "models", callback=comma_list(str, "a.onnx,b.plan")),
    _hidden("--checkpoint", type=click.Path()),
    _hidden("--batch-sizes", callback=comma_list(int, "1,8,32,128")),
    _hidden("--warmup-s", type=click.FloatRange(0), default=0.2),
    _hidden("--duration-s", type=click.FloatRange(0.01), default=3.0),
    _hidden("--routing-iters", callback=comma_list(int, "1,2,3,4,5")),
    _hidden("--accuracy-samples", type=int, default=0),
    _hidden("--dataset", type=click.Choice(["synthetic", "mnist", "fashion-mnist"])),
    _hidden("--data-dir", type=click.Path(file_okay=False)),
    _hidden("--test-split", default="t10k"),
    _hidden("--clients", type=click.IntRange(1), default=32),
    _hidden("--requests", "requests_per_client", type=click.IntRange(1), default=16),
    _hidden("--repeats", type=click.IntRange(1), default=5),
    # The flag form's batcher defaults; `bench batcher` takes serve's (cli/common.py).
    _hidden("--max-batch-size", type=click.IntRange(1), default=32),
    _hidden("--max-queue-delay-us", type=click.IntRange(0), default=2000),
    _hidden("--workers", type=click.IntRange(1), default=1),
    _hidden("--url"),
    _hidden("--model-name", default="capsnet"),
    _hidden("--concurrency", callback=comma_list(int, "1,4,16,64")),
    _hidden("--request-rate", callback=comma_list(float, "500,1000")),
    _hidden("--poisson", is_flag=True),
    _hidden("--batch", type=click.IntRange(1), default=1),
    _hidden("--binary/--json-tensors", default=True),
    _hidden("--window-s", type=click.FloatRange(0.01), default=2.0),
    _hidden("--max-trials", type=click.IntRange(3), default=10),
    _hidden("--threads", type=click.IntRange(1)),
    _hidden("--cuda-graphs", type=click.Choice(["both", "on", "off"]), default="both"),
    _hidden("--json", "json_dest"),
    _hidden("--csv", "csv_dest"),
    _hidden("--markdown", "md_dest"),
    _hidden("--plot", "plot_dest"),
]


def flag_form_options(fn):
    for opt in reversed(_OPTIONS):
        fn = opt(fn)
    return fn


def dispatch(ctx: click.Context, kw: dict) -> None:
    """The group's own run: nothing when a subcommand follows (and no flag form before it), the
    group's help when nothing is given, else the flag form's mode."""
    given = [p for p in ctx.command.params if ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE]
    if ctx.invoked_subcommand:
        if given:
            flags = ", ".join(p.opts[0] for p in given)
            raise click.UsageError(f"{flags}: options go after the subcommand (capsdeploy bench COMMAND ...)")
        return
    if not given:
        click.echo(ctx.get_help())
        ctx.exit(2)
    sub, flag, run = _mode(kw)
    note = ""
    if sub == "batcher":
        note = " (--workers is --instances there, and its batching defaults are serve's)"
    elif sub == "sweep" and kw["batch_sizes"]:
        note = " (--batch-sizes is --batch-size there)"
    click.echo(DEPRECATION.format(flag=flag, sub=sub, note=note), err=True)
    run()


def _mode(kw: dict):
    """(subcommand, the flag that chose it, the run): the flag form's rules, its refusals of
    another mode's flags included."""
    from . import bench_cmd

    common = {"threads": kw["threads"], "json_dest": kw["json_dest"]}
    engine_only = [flag for key, flag in ENGINE_ONLY.items() if kw[key]]
    if kw["url"]:
        _refuse_engine_flags(kw, engine_only)
        http = (
            "url",
            "model_name",
            "concurrency",
            "request_rate",
            "poisson",
            "batch",
            "binary",
            "window_s",
            "max_trials",
        )
        args = {k: kw[k] for k in http}
        return "http", "--url", lambda: bench_cmd.run_http(**args, json_dest=kw["json_dest"])
    for key in ("concurrency", "request_rate", "poisson"):
        if kw[key]:
            raise click.UsageError(f"--{key.replace('_', '-')} needs --url (HTTP mode)")
    if kw["routing_iters"] and kw["models"]:
        raise click.UsageError("--routing-iters exports each count from --checkpoint; drop --model")
    tables = {k: kw[k] for k in ("csv_dest", "md_dest", "plot_dest")}
    data = {k: kw[k] for k in ("warmup_s", "duration_s", "dataset", "data_dir", "test_split")}
    engine_mode = kw["engines"] or kw["peers"] or len(kw["models"]) > 1 or engine_only
    if kw["profile"] or (engine_mode and not kw["routing_iters"]):
        engines = {k: kw[k] for k in ("engines", "models", "checkpoint", "batch_sizes", "instances", "peers")}
        rest = {k: kw[k] for k in ("profile", "accuracy_samples", "cuda_graphs")}
        # Table flags alone (--batch-sizes, --csv, ...) also select engine mode; name the first.
        flag = next((f for f, v in [("--engines", kw["engines"]), ("--model", kw["models"]),
                                    ("--peers", kw["peers"]), ("--profile", kw["profile"])] if v),
                    engine_only[0] if engine_only else "--engines")  # fmt: skip
        return "engines", flag, lambda: bench_cmd.run_engines(**engines, **rest, **data, **tables, **common)
    if kw["peers"] and kw["routing_iters"]:
        raise click.UsageError("--peers belongs to engine mode (--engines), not to --routing-iters")
    if kw["routing_iters"]:
        sweep = {
            "checkpoint": kw["checkpoint"],
            "routing_iters": kw["routing_iters"],
            "engines": kw["engines"],
            "batch_size": (kw["batch_sizes"] or [32])[0],
            "accuracy_samples": kw["accuracy_samples"] or -1,
        }
        return "sweep", "--routing-iters", lambda: bench_cmd.run_sweep(**sweep, **data, **tables, **common)
    return "batcher", "--model" if kw["models"] else "--clients", lambda: _batcher(kw, common)


def _refuse_engine_flags(kw: dict, engine_only: list[str]) -> None:
    given = {
        "--engines": kw["engines"],
        "--model": kw["models"],
        "--checkpoint": kw["checkpoint"],
        "--routing-iters": kw["routing_iters"],
        "--peers": kw["peers"],
        "--instances": kw["instances"] > 1,
    }
    stray = [flag for flag, value in given.items() if value] + engine_only
    if stray:
        raise click.UsageError(f"{', '.join(stray)} belong to engine mode, not to --url (HTTP mode)")


def _batcher(kw: dict, common: dict) -> None:
    from ..repository import BatchingOptions
    from . import bench_cmd

    batching = BatchingOptions(
        max_batch_size=kw["max_batch_size"],
        instances=kw["workers"],
        max_queue_delay_us=kw["max_queue_delay_us"],
    )
    bench_cmd.run_batcher(
        model=kw["models"][0] if kw["models"] else None,
        checkpoint=kw["checkpoint"],
        engine=kw["engine"],
        clients=kw["clients"],
        requests_per_client=kw["requests_per_client"],
        repeats=kw["repeats"],
        batching=batching,
        **common,
    )
