"""`capsdeploy validate`: PyTorch vs a backend on the same real images."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..contract import INPUT_NAME
from ..data import load_split
from ..data.canvas import on_canvas
from ..data.preprocess import prepare_batch
from ..errors import UsageError
from ..model.checkpoint import read_run_info
from .compare import Comparison, compare_outputs, tolerances_for
from .select import make_backend


@dataclass
class ValidationReport:
    """What ``validate`` found; truthy when the engine passed. ``to_dict()`` is the JSON report."""

    engine: str
    model: str | None
    checkpoint: str
    precision: str
    routing_iters: int
    dataset: str
    split: str
    comparison: Comparison
    math: str = "FP32 (TF32 off)"  # what the candidate's FP32 tensors computed in
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        head = {k: v for k, v in self.__dict__.items() if k != "comparison"}
        return {**head, **self.comparison.to_dict()}


def validate(
    checkpoint: str,
    model: str | None,
    engine: str = "ort",
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    num_samples: int | None = 1000,
    batch_size: int = 64,
    atol: float | None = None,
    rtol: float | None = None,
    providers: list[str] | None = None,
    download: bool = True,
) -> ValidationReport:
    from .torch_backend import TorchBackend  # the reference: validate always needs torch

    info = read_run_info(checkpoint)
    kw = {"providers": providers} if engine == "ort" and providers else {}
    candidate = make_backend(engine, model=model, checkpoint=checkpoint, **kw)
    meta = candidate.metadata
    notes = []
    in_spec = _check_io(candidate, info)
    if meta is None:
        notes.append(f"{model} has no capsdeploy metadata; validating by its IO (input {in_spec.dtype})")
        precision, iters, with_decoder = "fp32", info.model.routing_iters, False
        input_dtype = in_spec.dtype
    else:
        if meta.weights_sha256 and meta.weights_sha256 != info.weights_sha256:
            raise UsageError(
                f"{model} was exported from other weights (sha256 {meta.weights_sha256[:12]}…) than "
                f"{checkpoint} ({info.weights_sha256[:12]}…); pass the checkpoint it came from"
            )
        precision, iters, with_decoder = meta.precision, meta.routing_iters, meta.with_decoder
        input_dtype = meta.input_dtype
    out_names = {o.name for o in candidate.outputs()}
    if "scores" not in out_names:
        raise UsageError(
            f"{model} has no 'scores' output (outputs: {sorted(out_names)}); not a CapsNet export"
        )
    if precision == "fp32" and candidate.math == "TF32 allowed":
        notes.append("FP32 model computed in TF32 by this engine: judged at the TF32 (FP16-level) tolerances")
    # An engine computing below its file's precision (OpenVINO running the FP32 file in bf16)
    # is judged at the tolerance of what it computes in.
    precision = candidate.compute_precision or precision
    tol = tolerances_for(precision, candidate.math).with_overrides(atol, rtol)
    reference = TorchBackend(
        checkpoint, routing_iters=iters, with_decoder=with_decoder and "reconstruction" in out_names
    )

    run_dataset, split = info.test_split(split)
    dataset = dataset or run_dataset
    data = load_split(dataset, split, data_dir, download, limit=num_samples)
    size = info.model.image_size

    def fit(pixels):  # runs trained with --pad or --multimnist take the digits on their canvas
        return on_canvas(pixels, size) if pixels.shape[-1] < size else pixels

    ref_out: dict[str, list] = {}
    cand_out: dict[str, list] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in tqdm(range(0, len(data), batch_size), desc="validate", leave=False, disable=None):
            pixels = fit(data.images[i : i + batch_size])
            r = reference.infer({INPUT_NAME: prepare_batch(pixels, "float32", info.normalization)})
            c = candidate.infer({in_spec.name: prepare_batch(pixels, input_dtype, info.normalization)})
            for store, out in ((ref_out, r), (cand_out, c)):
                for k, v in out.items():
                    store.setdefault(k, []).append(v)
    ref = {k: np.concatenate(v) for k, v in ref_out.items()}
    cand = {k: np.concatenate(v) for k, v in cand_out.items()}
    comparison = compare_outputs(ref, cand, tol, labels=data.labels)
    math = candidate.math
    candidate.close()
    return ValidationReport(
        engine,
        str(model) if model else None,
        str(checkpoint),
        precision,
        iters,
        dataset,
        split,
        comparison,
        math,
        notes,
    )


def _check_io(candidate, info):
    inputs = candidate.inputs()
    if len(inputs) != 1:
        raise UsageError(f"expected one input, the model has {[i.name for i in inputs]}")
    spec = inputs[0]
    cfg = info.model
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    got = tuple(spec.shape[1:])
    if len(spec.shape) != 4 or got != want:
        raise UsageError(f"model input {spec.name} {spec.shape} does not fit the checkpoint's images {want}")
    if spec.dtype not in ("float32", "float16", "uint8"):
        raise UsageError(f"model input dtype {spec.dtype} is not one capsdeploy can feed")
    return spec


def format_validation(report: ValidationReport) -> str:
    r = report.to_dict()
    t = r["tolerances"]
    tol = "top-1/accuracy only" if t["atol"] is None else f"atol {t['atol']:g}, rtol {t['rtol']:g}"
    lines = [
        f"{r['engine']} ({r['precision']}, {r['math']}, {r['routing_iters']} routing iterations) vs PyTorch on "
        f"{r['num_samples']} {r['dataset']}/{r['split']} images; tolerances: {tol}, "
        f"top-1 agreement >= {t['min_top1_agreement']:.2%}, accuracy drop <= {100 * t['max_accuracy_drop']:.2f} pp",
        f"{'output':<16}{'max abs':>11}{'max rel':>11}{'mean abs':>11}{'p99 abs':>11}{'min cos':>11}",
    ]
    for name, s in r["outputs"].items():
        lines.append(
            f"{name:<16}{s['max_abs_error']:>11.3g}{s['max_rel_error']:>11.3g}{s['mean_abs_error']:>11.3g}"
            f"{s['p99_abs_error']:>11.3g}{s['min_cosine_similarity']:>11.6f}"
        )
    if r["top1_agreement"] is not None:
        lines.append(f"top-1 agreement {r['top1_agreement']:.4%}")
    if "reference_accuracy" in r:
        lines.append(
            f"accuracy: PyTorch {r['reference_accuracy']:.4%}, {r['engine']} {r['candidate_accuracy']:.4%}"
        )
    lines += [f"note: {n}" for n in r["notes"]]
    lines += [f"FAIL {f}" for f in r["failures"]]
    lines.append("PASSED" if r["passed"] else "FAILED")
    return "\n".join(lines)
