"""The one interface every inference engine implements (template method, as
Polygraphy's runners do).

``Backend.infer`` checks every feed against ``inputs()`` (names, exact dtype,
rank, each non-batch dimension, the batch against the engine's limits), then
calls the subclass's ``_infer`` and wraps any engine error as ``InferenceError``.
Nothing above the runtime knows which engine it holds.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..contract import ModelMetadata
from ..errors import CapsDeployError, InferenceError, InvalidInputError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, float16, uint8
    shape: tuple  # ints, or None for a dynamic axis; axis 0 is the batch


def check_feeds(
    specs: list[TensorSpec],
    feeds: Mapping[str, np.ndarray],
    max_batch_size: int | None = None,
    min_batch_size: int = 1,
) -> dict[str, np.ndarray]:
    """The feeds as arrays, or ``InvalidInputError`` naming the tensor, what was
    expected and what came. No value is ever cast: a float image sent to a uint8
    graph would be truncated, so a dtype mismatch is an error."""
    if not isinstance(feeds, Mapping):
        raise InvalidInputError(f"feeds must map input names to arrays, got {type(feeds).__name__}")
    wanted = [s.name for s in specs]
    unknown = sorted(set(feeds) - set(wanted))
    missing = [n for n in wanted if n not in feeds]
    if unknown or missing:
        parts = [
            f"unknown input(s) {unknown}" if unknown else "",
            f"missing input(s) {missing}" if missing else "",
        ]
        raise InvalidInputError(f"{'; '.join(p for p in parts if p)}; the model takes {wanted}")
    out: dict[str, np.ndarray] = {}
    batch = None
    for spec in specs:
        arr = feeds[spec.name]
        if not isinstance(arr, np.ndarray):
            raise InvalidInputError(f"input {spec.name!r}: expected a numpy array, got {type(arr).__name__}")
        if arr.dtype.name != spec.dtype:
            raise InvalidInputError(
                f"input {spec.name!r}: dtype {arr.dtype.name}, expected {spec.dtype} "
                "(values are never cast implicitly; convert them first)"
            )
        if arr.ndim != len(spec.shape):
            raise InvalidInputError(
                f"input {spec.name!r}: {arr.ndim} dimensions {list(arr.shape)}, expected {len(spec.shape)} "
                f"{_fmt(spec.shape)}"
            )
        for axis in range(1, arr.ndim):
            want = spec.shape[axis]
            if isinstance(want, int) and arr.shape[axis] != want:
                raise InvalidInputError(
                    f"input {spec.name!r}: shape {list(arr.shape)}, expected {_fmt(spec.shape)} "
                    f"(axis {axis} is {arr.shape[axis]}, the model needs {want})"
                )
        n = arr.shape[0]
        fixed = spec.shape[0] if isinstance(spec.shape[0], int) else None
        if n < 1:
            raise InvalidInputError(f"input {spec.name!r}: empty batch (shape {list(arr.shape)})")
        if fixed is not None and n != fixed:
            raise InvalidInputError(
                f"input {spec.name!r}: batch {n}, the model was exported with batch {fixed}"
            )
        if max_batch_size is not None and n > max_batch_size:
            raise InvalidInputError(
                f"input {spec.name!r}: batch {n} exceeds this engine's maximum of {max_batch_size}; "
                "split the request"
            )
        if n < min_batch_size:
            raise InvalidInputError(
                f"input {spec.name!r}: batch {n} is below this engine's minimum of {min_batch_size}"
            )
        if batch is not None and n != batch:
            raise InvalidInputError(f"inputs disagree on the batch size ({batch} vs {n} for {spec.name!r})")
        batch = n
        out[spec.name] = arr
    return out


def _fmt(shape: tuple) -> str:
    return (
        "["
        + ", ".join("N" if i == 0 and not isinstance(d, int) else str(d) for i, d in enumerate(shape))
        + "]"
    )


class Backend(ABC):
    """Subclasses implement ``inputs``, ``outputs`` and ``_infer``; they may
    override ``max_batch_size``/``min_batch_size`` (engine limits), ``clone``,
    ``warmup`` and ``close``."""

    name: str = "backend"
    metadata: ModelMetadata | None = None

    @abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run checked feeds; return every output by name."""

    @property
    def max_batch_size(self) -> int | None:
        """The largest batch the engine takes (a TensorRT profile's maximum); None: unbounded."""
        return None

    @property
    def min_batch_size(self) -> int:
        return 1

    @property
    def math(self) -> str:
        """The arithmetic FP32 tensors get. CPU engines have no TF32, and the CUDA ones turn it
        off (torch, ONNX Runtime); a TensorRT plan says what it was built with."""
        return "FP32 (TF32 off)"

    @property
    def compute_precision(self) -> str | None:
        """The precision the engine computes in when it differs from its file's (OpenVINO running
        an FP32 file in bf16); None: the file's. Validation picks its tolerance by it."""
        return None

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        checked = check_feeds(self.inputs(), feeds, self.max_batch_size, self.min_batch_size)
        try:
            return self._infer(checked)
        except CapsDeployError:
            raise
        except Exception as e:  # every engine raises its own types
            first = str(e).splitlines()[0][:300] if str(e) else ""
            raise InferenceError(f"{self.name} inference failed: {type(e).__name__}: {first}") from e

    def warmup(self) -> None:
        """One inference at the smallest batch the engine takes."""
        n = self.min_batch_size
        self.infer(
            {
                s.name: np.zeros((n, *(d if isinstance(d, int) else 1 for d in s.shape[1:])), s.dtype)
                for s in self.inputs()
            }
        )

    def clone(self) -> Backend:
        """Another handle for another worker thread. The default shares the engine
        (ONNX Runtime sessions and torch modules in inference mode are thread-safe);
        TensorRT overrides it with a new execution context."""
        return copy.copy(self)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what this handle holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
