"""The one comparator: reference vs candidate outputs, statistics and a verdict.

Default tolerances per precision, and why:
- fp32: both sides compute in FP32 and differ only in operation order (conv
  algorithms, the sums over 1152 child capsules). Scores are lengths in (0, 1),
  where FP32 spacing is ~6e-8; 1e-5 allows ~100 ulps of accumulated reordering
  and still catches any real graph difference (a wrong routing step moves
  scores by 1e-2 or more). Every top-1 must agree.
- fp16: a 10-bit mantissa gives ~5e-4 relative error per rounding; the
  convolutions sum 20,736 products each. 5e-3 absolute on (0, 1) values, and
  top-1 agreement of at least 99.9% (near-ties may flip).
- bf16 (OpenVINO's bf16 inference precision on the FP32 file, bf16 autocast): an 8-bit
  mantissa, 4x FP16's rounding error (2^-9 vs 2^-11 relative per rounding), with FP32
  accumulation in the convolutions and matmuls. 2e-2 absolute plus 2e-2 relative: 4x the
  FP16 bound; top-1 agreement >= 99.9% and at most 0.1 pp of accuracy lost, the bar the
  deployment target sets. Measured on all 10,000 MNIST test digits: docs/results.md.
- int8: elementwise error is ~1e-2 by design (256 levels per tensor), so it is
  reported, not judged; the verdict is top-1 agreement >= 99% and accuracy
  within 0.2 percentage points of the reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    atol: float | None  # None: elementwise error is reported, not judged
    rtol: float
    min_top1_agreement: float
    max_accuracy_drop: float  # fraction, e.g. 0.002 = 0.2 percentage points

    def with_overrides(self, atol: float | None = None, rtol: float | None = None) -> Tolerances:
        return replace(
            self, atol=self.atol if atol is None else atol, rtol=self.rtol if rtol is None else rtol
        )


DEFAULT_TOLERANCES = {
    "fp32": Tolerances(atol=1e-5, rtol=1e-4, min_top1_agreement=1.0, max_accuracy_drop=0.0),
    "fp16": Tolerances(atol=5e-3, rtol=1e-2, min_top1_agreement=0.999, max_accuracy_drop=0.002),
    "bf16": Tolerances(atol=2e-2, rtol=2e-2, min_top1_agreement=0.999, max_accuracy_drop=0.001),
    "int8": Tolerances(atol=None, rtol=0.0, min_top1_agreement=0.99, max_accuracy_drop=0.002),
}
# An FP32 model run by an engine that computes FP32 in TF32 (ONNX Runtime's TensorRT provider,
# which has no option to turn TF32 off): TF32 rounds the inputs of each product to FP16's 10-bit
# mantissa and accumulates in FP32, so its error is bounded by the FP16 model's.
TF32_TOLERANCES = DEFAULT_TOLERANCES["fp16"]


def tolerances_for(precision: str, math: str) -> Tolerances:
    """The tolerances an engine is judged by: its model's precision, except FP32 computed in TF32."""
    if precision == "fp32" and math == "TF32 allowed":
        return TF32_TOLERANCES
    return DEFAULT_TOLERANCES[precision]


def error_stats(ref: np.ndarray, cand: np.ndarray, tol: Tolerances) -> dict:
    ref = ref.astype(np.float64).reshape(len(ref), -1)
    cand = cand.astype(np.float64).reshape(len(cand), -1)
    diff = np.abs(ref - cand)
    rel = diff / np.maximum(np.abs(ref), 1e-12)
    dot = (ref * cand).sum(1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, dot / np.maximum(norms, 1e-300), 1.0)
    stats = {
        "max_abs_error": float(diff.max(initial=0.0)),
        "max_rel_error": float(rel.max(initial=0.0)),
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "p99_abs_error": float(np.percentile(diff, 99)) if diff.size else 0.0,
        "min_cosine_similarity": float(cosine.min(initial=1.0)),
        "mean_cosine_similarity": float(cosine.mean()) if cosine.size else 1.0,
    }
    if tol.atol is not None:
        bad = diff > tol.atol + tol.rtol * np.abs(ref)
        stats["elements_out_of_tolerance"] = int(bad.sum())
        stats["passed"] = not bad.any()
    return stats


@dataclass
class Comparison:
    """The comparator's verdict: statistics per output, top-1 and accuracies, failures.

    Truthy when it passed. ``to_dict()`` is the JSON that reports carry."""

    tolerances: Tolerances
    outputs: dict[str, dict]
    failures: list[str]
    num_samples: int = 0
    top1_agreement: float | None = None
    reference_accuracy: float | None = None
    candidate_accuracy: float | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        d = {
            "tolerances": asdict(self.tolerances),
            "outputs": self.outputs,
            "failures": list(self.failures),
            "num_samples": self.num_samples,
            "top1_agreement": self.top1_agreement,
        }
        if self.reference_accuracy is not None:
            d.update(reference_accuracy=self.reference_accuracy, candidate_accuracy=self.candidate_accuracy)
        d["passed"] = self.passed
        return d


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    tol: Tolerances,
    labels: np.ndarray | None = None,
    score_name: str = "scores",
) -> Comparison:
    """Statistics per common output, top-1 agreement and accuracies, and a verdict.

    Nothing compared is a failure, not a pass: no output name in common, or zero samples."""
    names = [n for n in reference if n in candidate]
    result = Comparison(tol, {}, [])
    if not names:
        result.failures.append(
            f"no output in common (reference: {sorted(reference)}, candidate: {sorted(candidate)})"
        )
        return result
    for n in names:
        if reference[n].shape != candidate[n].shape:
            result.failures.append(
                f"{n}: shape {candidate[n].shape} differs from the reference's {reference[n].shape}"
            )
    if result.failures:
        return result
    result.num_samples = int(len(reference[names[0]]))
    if result.num_samples == 0:
        result.failures.append("zero samples compared")
        return result
    result.outputs = {n: error_stats(reference[n], candidate[n], tol) for n in names}
    for n, s in result.outputs.items():
        if s.get("passed") is False:
            result.failures.append(
                f"{n}: {s['elements_out_of_tolerance']} elements beyond atol {tol.atol} + rtol {tol.rtol} "
                f"(max abs {s['max_abs_error']:.3g})"
            )
    if score_name in names:
        ref_top, cand_top = reference[score_name].argmax(1), candidate[score_name].argmax(1)
        agreement = float((ref_top == cand_top).mean())
        result.top1_agreement = agreement
        if agreement < tol.min_top1_agreement:
            result.failures.append(f"top-1 agreement {agreement:.4%} < {tol.min_top1_agreement:.4%}")
        if labels is not None:
            ref_acc, cand_acc = float((ref_top == labels).mean()), float((cand_top == labels).mean())
            result.reference_accuracy, result.candidate_accuracy = ref_acc, cand_acc
            if ref_acc - cand_acc > tol.max_accuracy_drop + 1e-12:
                result.failures.append(
                    f"accuracy {cand_acc:.4%} is {100 * (ref_acc - cand_acc):.2f} pp below the reference "
                    f"{ref_acc:.4%} (allowed {100 * tol.max_accuracy_drop:.2f} pp)"
                )
    return result
